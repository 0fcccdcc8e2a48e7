"""`make demo`: the whole job on one machine, in under a minute.

Starts a throwaway mosquitto, an appliance with demo badges and short timers, and a
subscriber that prints each event as one line; then plays a shift: checkout, handoff,
re-tap guard, idle lock and reauth, an unknown badge, a broker outage with taps buffered and
replayed, and a return. It ends by stopping everything it started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.appliance_kit import write_appliance
from tests.broker import Broker
from tests.netutil import free_udp_port

SITE, DEVICE = "st-elsewhere", "WOW-3N-07"
BADGES = {
    "Ana Diaz (RN)": "04A1B2C3",
    "Bo Chen (MD)": "04A1B2C3D4E5F6",
    "Cy Park (RT)": "04A1B2C3D4E5F6071829",
}
UNKNOWN = "04DEADBEEF0001"


class Printer:
    """Subscribes like an integration engineer would and prints one readable line per event."""

    def __init__(self, port: int) -> None:
        self.seqs: list[int] = []
        self.arrived = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="demo-printer", clean_session=False)
        self.client.on_connect = lambda c, *_: c.subscribe(f"handoff/v1/{SITE}/{DEVICE}/events/#", qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        event = json.loads(message.payload)
        data = event["data"]
        details = [f"{key}={data[key]}" for key in ("staff_id", "previous_staff_id", "reason") if data.get(key)]
        print(f"    ← seq {data['seq']:>2}  {event['type'].removeprefix('org.handoff.'):<14} {' '.join(details)}")
        with self.arrived:
            self.seqs.append(data["seq"])
            self.arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 15.0) -> None:
        with self.arrived:
            self.arrived.wait_for(lambda: len(set(self.seqs)) >= count, timeout)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def handoff(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "handoff", *args], env=env, text=True, capture_output=True, check=False
    )


def say(text: str) -> None:
    print(f"\n▶ {text}", flush=True)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="handoff-demo-"))
    broker = Broker(work / "broker")
    broker.start()
    nfc_port = free_udp_port()
    config = write_appliance(
        work,
        broker.port,
        readers=f'[[readers]]\nkind = "nfc"\npath = "udp:127.0.0.1:{nfc_port}"',
        policy="idle_timeout_s = 6\nmax_session_s = 120\ncustody_timeout_s = 600\nretap_guard_s = 3",
        device=DEVICE,
    )
    env = {**os.environ, "HANDOFF_CONFIG": str(config), "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    csv = work / "badges.csv"
    csv.write_text(
        "uid,staff_id,name,role\n"
        + "".join(
            f"{uid},{name.split()[0].lower()},{name.split(' (')[0]},{name[-3:-1]}\n" for name, uid in BADGES.items()
        )
    )
    print(handoff("badges", "import", str(csv), env=env).stdout.strip())
    printer = Printer(broker.port)
    appliance = subprocess.Popen([sys.executable, "-m", "handoff", "run"], env=env)
    device = f"udp:127.0.0.1:{nfc_port}"

    def tap(who: str, uid: str) -> None:
        say(who)
        handoff("sim", "tap", uid, "--device", device, env=env)

    try:
        time.sleep(1.5)
        tap("Ana taps her badge: she takes the cart", BADGES["Ana Diaz (RN)"])
        printer.wait_for(1)
        tap("Bo taps his badge while Ana is logged in: a handoff", BADGES["Bo Chen (MD)"])
        printer.wait_for(4)
        tap("Bo taps again at once: the re-tap guard ignores it", BADGES["Bo Chen (MD)"])
        say("Bo walks away; after 6 s without activity his session is locked")
        printer.wait_for(5)
        tap("Bo comes back and taps: reauth with a new session", BADGES["Bo Chen (MD)"])
        printer.wait_for(6)
        tap("A badge nobody knows is tapped", UNKNOWN)
        printer.wait_for(7)
        say("The broker goes down")
        broker.stop()
        tap("Cy taps during the outage: the handoff is kept in the outbox", BADGES["Cy Park (RT)"])
        cy_tapped = time.monotonic()
        time.sleep(0.5)
        print("    " + handoff("status", env=env).stdout.strip().replace("\n", "\n    "))
        say("The broker comes back: the buffered events are replayed in order")
        broker.start()
        printer.wait_for(10, timeout=30)
        time.sleep(max(0.0, 3.5 - (time.monotonic() - cy_tapped)))
        tap("Cy taps again after the guard: she returns the cart", BADGES["Cy Park (RT)"])
        printer.wait_for(11)
    finally:
        appliance.send_signal(signal.SIGTERM)
        code = appliance.wait(timeout=10)
        printer.close()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    seqs = sorted(set(printer.seqs))
    gapless = seqs == list(range(1, len(seqs) + 1))
    print(
        f"\n{len(seqs)} events received, seq 1..{seqs[-1] if seqs else 0}, {'no gaps' if gapless else 'GAPS'}; "
        f"appliance exited {code}"
    )
    return 0 if gapless and code == 0 and len(seqs) >= 11 else 1


if __name__ == "__main__":
    sys.exit(main())
