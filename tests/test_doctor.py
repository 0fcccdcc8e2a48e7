"""`handoff doctor` checks against real parts: a mutual-TLS mosquitto, real files, SQLite."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from handoff.audit.keys import private_pem, public_pem
from handoff.audit.signature import fingerprint
from handoff.clock import STA_UNSYNC, TIME_ERROR, synced_from_timex
from handoff.config import Config, load_config
from handoff.doctor.broker import check_broker, check_client_cert
from handoff.doctor.local import check_audit, check_commands, check_config, check_database, check_secret
from handoff.doctor.readers import check_nfc_readers
from handoff.doctor.result import Status
from handoff.doctor.system import check_clock, check_gpio, check_nfc_kernel_modules
from handoff.provision.render import Table
from tests.kit.cli import handoff_env
from tests.kit.config import SECRET, config_text
from tests.kit.pki import Ca, make_ca, write_cert, write_key
from tests.kit.tls_broker import tls_broker


def client_files(ca: Ca, where: Path, not_after: datetime | None = None) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rdr-0042")])
    cert = ca.sign(name, key.public_key(), server=False, not_after=not_after)
    where.mkdir(parents=True, exist_ok=True)
    return write_cert(cert, where / "reader.crt"), write_key(key, where / "reader.key")


def write_config(
    tmp_path: Path,
    *,
    port: int = 1,
    ca: Path,
    cert: Path,
    key: Path,
    data_dir: Path | None = None,
    appliance: Table | None = None,
    readers: Sequence[Table] = ({"kind": "nfc", "path": "usb"},),
) -> Path:
    secret = tmp_path / "badge.key"
    if not secret.exists():
        secret.write_text(SECRET)
        secret.chmod(0o600)
    path = tmp_path / "handoff.toml"
    mqtt = {"url": f"mqtts://127.0.0.1:{port}", "ca_file": str(ca), "cert_file": str(cert), "key_file": str(key)}
    path.write_text(config_text(data_dir or tmp_path / "data", secret, appliance=appliance, mqtt=mqtt, readers=readers))
    return path


@pytest.fixture
def ca() -> Ca:
    return make_ca()


def config_for(tmp_path: Path, ca: Ca, port: int = 1, ca_file: Path | None = None) -> Config:
    cert, key = client_files(ca, tmp_path / "client")
    return load_config(
        write_config(tmp_path, port=port, ca=ca_file or ca.write(tmp_path / "ca.pem"), cert=cert, key=key)
    )


def test_broker_passes_with_the_right_ca_and_client_cert(tmp_path: Path, ca: Ca) -> None:
    with tls_broker(ca, tmp_path / "broker") as broker:
        result = check_broker(config_for(tmp_path, ca, broker.port).mqtt, timeout=5)
    assert result.status is Status.PASS, result.line()
    assert result.line().startswith("PASS  broker: TLS and MQTT CONNECT")


def test_broker_with_a_wrong_ca_fails_and_says_which_setting_to_fix(tmp_path: Path, ca: Ca) -> None:
    other = make_ca("Some Other CA").write(tmp_path / "other-ca.pem")
    with tls_broker(ca, tmp_path / "broker") as broker:
        result = check_broker(config_for(tmp_path, ca, broker.port, ca_file=other).mqtt, timeout=5)
    assert result.status is Status.FAIL
    assert "not trusted" in result.detail and "mqtt.ca_file" in result.detail


def test_broker_before_the_client_certificate_is_signed_checks_tls_only(tmp_path: Path, ca: Ca) -> None:
    """Provisioning leaves a key and a CSR: the handshake against the CA is still worth checking."""
    _, key = client_files(ca, tmp_path / "client")
    with tls_broker(ca, tmp_path / "broker") as broker:
        config = load_config(
            write_config(
                tmp_path, port=broker.port, ca=ca.write(tmp_path / "ca.pem"), cert=tmp_path / "unsigned.crt", key=key
            )
        )
        result = check_broker(config.mqtt, timeout=5)
    assert result.status is Status.WARN, result.line()
    assert "TLS to 127.0.0.1" in result.detail and "no client certificate yet" in result.detail


@pytest.mark.parametrize(
    ("culprit", "complaint"),
    [
        ("ca_file", "mqtt.ca_file {ca}: not a usable CA certificate"),
        ("key_file", "mqtt.cert_file {cert} / mqtt.key_file {key}: not a matching certificate and key"),
    ],
)
def test_broker_check_names_the_tls_file_it_cannot_use(tmp_path: Path, ca: Ca, culprit: str, complaint: str) -> None:
    """The message is the one `handoff run` gives (mqtt.connection.tls_context): key and file."""
    cert, key = client_files(ca, tmp_path / "client")
    files = {"ca": ca.write(tmp_path / "ca.pem"), "cert": cert, "key": key}
    {"ca_file": files["ca"], "key_file": key}[culprit].write_text("not PEM\n")
    with tls_broker(ca, tmp_path / "broker") as broker:
        config = load_config(write_config(tmp_path, port=broker.port, **files))
        result = check_broker(config.mqtt, timeout=5)
    assert result.status is Status.FAIL, result.line()
    assert f"TLS files unusable: {complaint.format(ca=files['ca'], cert=cert, key=key)}" in result.detail, result.detail


def test_unreachable_broker_fails_naming_host_and_port(tmp_path: Path, ca: Ca) -> None:
    with tls_broker(ca, tmp_path / "broker") as broker:
        port = broker.port
    result = check_broker(config_for(tmp_path, ca, port).mqtt, timeout=2)
    assert result.status is Status.FAIL
    assert f"127.0.0.1:{port}" in result.detail


def test_client_certificate_expiry(tmp_path: Path, ca: Ca) -> None:
    now = datetime.now(UTC)
    for days, expected, words in ((-1, Status.FAIL, "expired"), (10, Status.WARN, "renew"), (90, Status.PASS, "")):
        cert, key = client_files(ca, tmp_path / f"c{days}", not_after=now + timedelta(days=days))
        config = load_config(write_config(tmp_path, ca=ca.write(tmp_path / "ca.pem"), cert=cert, key=key))
        result = check_client_cert(config.mqtt, now)
        assert result.status is expected, result.line()
        assert words in result.detail


def test_expired_client_cert_is_refused_by_the_broker(tmp_path: Path, ca: Ca) -> None:
    cert, key = client_files(ca, tmp_path / "old", not_after=datetime.now(UTC) - timedelta(days=1))
    with tls_broker(ca, tmp_path / "broker") as broker:
        config = load_config(
            write_config(tmp_path, port=broker.port, ca=ca.write(tmp_path / "ca.pem"), cert=cert, key=key)
        )
        result = check_broker(config.mqtt, timeout=10)
    assert result.status is Status.FAIL, result.line()
    assert "refused CONNECT" in result.detail and "expired" in result.detail


def test_missing_secret_and_unwritable_data_dir_fail(tmp_path: Path, ca: Ca) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    cert, key = client_files(ca, tmp_path / "client")
    config = load_config(write_config(tmp_path, ca=tmp_path / "ca.pem", cert=cert, key=key, data_dir=blocker / "data"))
    config.appliance.badge_secret_file.unlink()
    secret = check_secret(config)
    assert secret.status is Status.FAIL
    assert "does not exist" in secret.detail and "--secret-file" in secret.detail
    database = check_database(config)
    assert database.status is Status.FAIL
    assert str(blocker / "data") in database.detail


def test_data_dir_and_config_pass_when_sound(tmp_path: Path, ca: Ca) -> None:
    cert, key = client_files(ca, tmp_path / "client")
    path = write_config(tmp_path, ca=tmp_path / "ca.pem", cert=cert, key=key)
    result, config = check_config(path)
    assert result.status is Status.PASS and config is not None
    assert check_database(config).status is Status.PASS
    assert check_secret(config).status is Status.PASS
    broken, none = check_config(tmp_path / "missing.toml")
    assert broken.status is Status.FAIL and none is None


def test_pn533_drivers_in_proc_modules_fail_with_the_blacklist_fix(tmp_path: Path, ca: Ca) -> None:
    config = config_for(tmp_path, ca)
    modules = tmp_path / "modules"
    modules.write_text(
        "nfc 131072 1 pn533, Live 0x0000000000000000\n"
        "pn533_usb 20480 0 - Live 0x0000000000000000\n"
        "pn533 45056 1 pn533_usb, Live 0x0000000000000000\n"
    )
    result = check_nfc_kernel_modules(config, modules)
    assert result.status is Status.FAIL
    assert "pn533, pn533_usb" in result.detail and "blacklist" in result.detail and "modprobe -r" in result.detail
    modules.write_text("nfc 131072 0 - Live 0x0000000000000000\nsnd 1 0 - Live 0x0\n")
    assert check_nfc_kernel_modules(config, modules).status is Status.PASS


def test_clock_and_gpio_without_hardware(tmp_path: Path, ca: Ca) -> None:
    assert synced_from_timex(0, 0)
    assert not synced_from_timex(TIME_ERROR, 0)
    assert not synced_from_timex(0, STA_UNSYNC)
    assert check_clock(lambda: True).status is Status.PASS
    assert check_clock(lambda: False).status is Status.WARN
    assert check_gpio(config_for(tmp_path, ca)).status is Status.PASS


def test_doctor_command_prints_one_line_per_check_and_exits_non_zero_on_failure(tmp_path: Path, ca: Ca) -> None:
    config = tmp_path / "handoff.toml"
    config_for(tmp_path, ca)
    modules = tmp_path / "modules"
    modules.write_text("port100 1 0 - Live 0x0\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "handoff",
            "doctor",
            "-c",
            str(config),
            "--proc-modules",
            str(modules),
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=handoff_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert all(line[:6] in ("PASS  ", "WARN  ", "FAIL  ", "SKIP  ") for line in lines), lines
    assert any(line.startswith("FAIL  nfc kernel drivers: port100") for line in lines)
    assert any(line.startswith("PASS  badge secret") for line in lines)


def test_nfc_reader_paths_are_opened_with_nfcpy(tmp_path: Path, ca: Ca) -> None:
    readers = ({"kind": "nfc", "path": "udp:127.0.0.1:54399"}, {"kind": "nfc", "path": "tty:NOPE:pn532"})
    path = write_config(
        tmp_path, ca=tmp_path / "ca.pem", cert=tmp_path / "c.pem", key=tmp_path / "k.pem", readers=readers
    )
    results = check_nfc_readers(load_config(path))
    assert [r.status for r in results] == [Status.PASS, Status.FAIL], [r.line() for r in results]
    assert "plug the reader in" in results[1].detail


def test_pcscd_out_of_reach_fails_with_the_command_to_start_it(tmp_path: Path, ca: Ca) -> None:
    """A socket path nobody serves stands for a stopped pcscd, whatever runs on this machine."""
    readers = ({"kind": "nfc", "path": "usb"}, {"kind": "pcsc", "name": "Virtual PCD"})
    path = write_config(
        tmp_path, ca=tmp_path / "ca.pem", cert=tmp_path / "c.pem", key=tmp_path / "k.pem", readers=readers
    )
    done = subprocess.run(
        [sys.executable, "-m", "handoff", "doctor", "-c", str(path)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=handoff_env({"PCSCLITE_CSOCK_NAME": str(tmp_path / "no-pcscd.comm")}),
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert any(
        line.startswith("FAIL  pcscd: not reachable") and "systemctl enable --now pcscd" in line
        for line in done.stdout.splitlines()
    ), done.stdout


def test_commands_check_warns_when_unsigned_commands_are_allowed(tmp_path: Path, ca: Ca) -> None:
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "c.pem", "key": tmp_path / "k.pem"}
    refused = check_commands(load_config(write_config(tmp_path, **files)))
    assert refused.status is Status.PASS and "every command is refused" in refused.detail
    path = write_config(tmp_path, **files, appliance={"allow_unsigned_commands": True})
    allowed = check_commands(load_config(path))
    assert allowed.status is Status.WARN and "appliance.allow_unsigned_commands = true" in allowed.detail
    bad_key = tmp_path / "commands.pem"
    bad_key.write_text("not a key\n")
    path = write_config(tmp_path, **files, appliance={"command_key_file": str(bad_key)})
    broken = check_commands(load_config(path))
    assert broken.status is Status.FAIL and "appliance.command_key_file" in broken.detail


def test_commands_check_names_every_key_of_a_rotation(tmp_path: Path) -> None:
    """Old and new key both listed, by fingerprint, so the operator sees when the old one is gone."""
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "c.pem", "key": tmp_path / "k.pem"}
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    keys = tmp_path / "commands.pem"
    keys.write_bytes(public_pem(old) + public_pem(new))
    config = load_config(write_config(tmp_path, **files, appliance={"command_key_file": str(keys)}))
    both = check_commands(config)
    fingerprints = [fingerprint(k) for k in (old, new)]
    assert both.status is Status.PASS and f"(keys {fingerprints[0]}, {fingerprints[1]})" in both.detail
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    keys.write_bytes(public_pem(new) + p256.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    mixed = check_commands(config)
    assert mixed.status is Status.FAIL and mixed.detail.startswith(f"appliance.command_key_file: {keys} holds a key")
    assert "not Ed25519" in mixed.detail and "\n" not in mixed.detail


def test_audit_check_says_whether_checkpoints_are_signed(tmp_path: Path) -> None:
    secret = tmp_path / "badge.key"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    config = tmp_path / "handoff.toml"
    config.write_text(config_text(tmp_path / "data", secret))
    unsigned = check_audit(load_config(config))
    assert unsigned.status is Status.WARN and "provision" in unsigned.detail
    key = tmp_path / "audit.key"
    key.write_bytes(private_pem(Ed25519PrivateKey.generate()))
    key.chmod(0o600)
    config.write_text(config_text(tmp_path / "data", secret, audit={"key_file": str(key)}))
    assert check_audit(load_config(config)).status is Status.PASS
    key.write_text("not a key")
    broken = check_audit(load_config(config))
    assert broken.status is Status.FAIL and str(key) in broken.detail
