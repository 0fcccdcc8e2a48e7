#!/usr/bin/env bash
# Turns a fresh Raspberry Pi OS (bookworm) into a handoff appliance. Run as root from a
# checkout:  sudo firmware/install.sh   then: handoff provision ... && systemctl start handoff
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
prefix=/opt/handoff

if [[ $(id -u) -ne 0 ]]; then
    echo "install.sh: run as root (sudo $0)" >&2
    exit 2
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    python3 python3-venv python3-lgpio pcscd libccid libpcsclite1 ca-certificates chrony

id -u handoff >/dev/null 2>&1 || useradd --system --home-dir /var/lib/handoff --shell /usr/sbin/nologin handoff
for group in gpio dialout input; do
    getent group "$group" >/dev/null || groupadd --system "$group"
done
usermod -a -G gpio,dialout,input handoff

python3 -m venv --system-site-packages "$prefix/venv"
"$prefix/venv/bin/pip" install -q --upgrade pip
"$prefix/venv/bin/pip" install -q "$repo[appliance]"
install -d -m 0755 "$prefix/docs"
cp -r "$repo/docs/." "$prefix/docs/"

install -d -m 0750 -o root -g handoff /etc/handoff
install -d -m 0750 -o handoff -g handoff /var/lib/handoff
install -m 0644 "$here/handoff.service" /etc/systemd/system/handoff.service
install -m 0644 "$here/60-handoff-nfc.rules" /etc/udev/rules.d/60-handoff-nfc.rules
install -m 0644 "$here/61-handoff-readers.rules" /etc/udev/rules.d/61-handoff-readers.rules
install -m 0644 "$here/blacklist-pn533.conf" /etc/modprobe.d/blacklist-pn533.conf
install -d -m 0755 /etc/systemd/system/pcscd.service.d
install -m 0644 "$here/pcscd-override.conf" /etc/systemd/system/pcscd.service.d/handoff.conf

config_txt=/boot/firmware/config.txt
[[ -f $config_txt ]] || config_txt=/boot/config.txt
if [[ -f $config_txt ]] && ! grep -q "^enable_uart=1" "$config_txt"; then
    cat "$here/config.txt.append" >>"$config_txt"
fi

for module in pn533_usb pn533 port100; do
    modprobe -r "$module" 2>/dev/null || true
done
udevadm control --reload-rules
udevadm trigger --subsystem-match=usb --subsystem-match=input --subsystem-match=tty
systemctl daemon-reload
systemctl enable pcscd.service handoff.service

echo "installed. Next: handoff provision --output-dir /etc/handoff ... ; handoff doctor; systemctl start handoff"
