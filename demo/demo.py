"""`make demo`: the whole job on one machine, in under a minute.

Starts a throwaway mosquitto, an appliance with demo badges and short timers, the agent of
the attached workstation (its logoff action writes a line to a file, as an EHR logoff script
would act), and a subscriber that prints each event as one line; then plays a shift:
checkout, a handoff the agent confirms, re-tap guard, an idle lock while the agent is down
(unconfirmed, then confirmed late when it is back), reauth, an unknown badge, a broker outage
with taps buffered and replayed, a return, and emergency access (break-glass) by a revoked badge
held on the reader; the ledger records it all, and its web console
serves it on a loopback port with a demo account. It ends by stopping everything it started
(at a terminal, once you press Enter, so the console can be looked at).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import urlencode
from urllib.request import HTTPCookieProcessor, build_opener

import pyotp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from handoff.provision.render import render_toml
from handoff.timefmt import rfc3339
from tests.kit.broker import Broker
from tests.kit.cli import handoff_env, run_handoff
from tests.kit.collector import Collector, Message
from tests.kit.config import DEVICE, PREFIX, SITE, Layout
from tests.kit.keys import write_audit_key
from tests.kit.ledger import Console
from tests.kit.net import free_udp_port

BADGES = {
    "Ana Diaz (RN)": "04A1B2C3",
    "Bo Chen (MD)": "04A1B2C3D4E5F6",
    "Cy Park (RT)": "04A1B2C3D4E5F6071829",
}
UNKNOWN = "04DEADBEEF0001"
REVOKED = ("Dee Lin (RN)", "04C0FFEE")
"""A badge the directory still knows but has revoked: refused, unless its holder breaks the glass."""
EHR_LOGOFF = [sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write(f'logged off {sys.argv[2]}\\n')"]
"""The demo's stand-in for an EHR's logoff script: it notes whom it logged off."""
CONSOLE_ACCOUNT = ("demo", "demo-console-password")


def show(message: Message) -> None:
    """One readable line per event, as an integration engineer's subscriber would print it."""
    event = message.json()
    data = event["data"]
    keys = ("staff_id", "previous_staff_id", "reason", "previous_logoff")
    details = [f"{key}={data[key]}" for key in keys if data.get(key)]
    print(f"    ← seq {data['seq']:>2}  {event['type'].removeprefix('org.handoff.'):<14} {' '.join(details)}")


def seqs(messages: list[Message]) -> set[int]:
    return {int(m.json()["data"]["seq"]) for m in messages}


def say(text: str) -> None:
    print(f"\n▶ {text}", flush=True)


def fleet_csv(base: str, secret: str) -> str:
    """Log in to the console as the demo account and fetch the fleet page's table, the way a
    browser would: the login form's token, the account's one-time code, then the session cookie."""
    browser = build_opener(HTTPCookieProcessor(CookieJar()))
    form = browser.open(f"{base}/login", timeout=10).read().decode()
    token = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    fields = {
        "csrf": token,
        "name": CONSOLE_ACCOUNT[0],
        "password": CONSOLE_ACCOUNT[1],
        "code": pyotp.TOTP(secret).now(),
        "next": "/fleet?format=csv",
    }
    answer: bytes = browser.open(f"{base}/login", urlencode(fields).encode(), timeout=10).read()
    return answer.decode()


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="handoff-demo-"))
    broker = Broker(work / "broker")
    broker.start()
    nfc_port = free_udp_port()
    agent_key, agents = work / "agent.key", work / "agents.pem"
    agents.write_text(run_handoff("agent", "keygen", "--out", str(agent_key)).stdout)
    layout = Layout.create(work)
    audit_key, appliance_pub = write_audit_key(work)
    config = layout.configure(
        port=broker.port,
        readers=[{"kind": "nfc", "path": f"udp:127.0.0.1:{nfc_port}"}],
        policy={"idle_timeout_s": 6, "max_session_s": 120, "custody_timeout_s": 600, "retap_guard_s": 3},
        agent={"keys_file": str(agents), "confirm_s": 3},
        audit={"key_file": str(audit_key)},
    )
    env = {"HANDOFF_CONFIG": str(config)}
    logged_off = work / "ehr-logoffs.txt"
    agent_config = work / "agent.toml"
    agent_config.write_text(
        render_toml(
            {
                "agent": {
                    "site": SITE,
                    "device_id": DEVICE,
                    "agent_id": "ws-3n-07",
                    "key_file": str(agent_key),
                    "appliance_key": str(appliance_pub),
                    "data_dir": str(work / "agent"),
                },
                "mqtt": {"url": f"mqtt://127.0.0.1:{broker.port}", "allow_insecure": True},
                "activity": {"kind": "none"},
            },
            {"actions": [{"kind": "command", "argv": [*EHR_LOGOFF, str(logged_off), "{staff_id}"]}]},
        )
    )
    csv = work / "badges.csv"
    rows = [(name, uid, "false") for name, uid in BADGES.items()] + [(*REVOKED, "true")]
    csv.write_text(
        "uid,staff_id,name,role,revoked\n"
        + "".join(
            f"{uid},{name.split()[0].lower()},{name.split(' (')[0]},{name[-3:-1]},{revoked}\n"
            for name, uid, revoked in rows
        )
    )
    print(run_handoff("badges", "import", str(csv), env=env).stdout.strip())
    printer = Collector(broker.port, f"{PREFIX}/events/#", on_message=show)
    appliance = subprocess.Popen([sys.executable, "-m", "handoff", "run"], env=handoff_env(env))
    agent: list[subprocess.Popen[bytes]] = []
    console = Console(work, f"sqlite:///{work / 'ledger.db'}", broker.port)
    console.add_user(CONSOLE_ACCOUNT[0], "admin", CONSOLE_ACCOUNT[1])
    ledger_env = {"HANDOFF_LEDGER_CONFIG": str(console.config)}
    assets = work / "assets.csv"
    assets.write_text(f"device_id,model,unit,asset_tag,site\n{DEVICE},Capsa M38e,3 North,BIO-004711,{SITE}\n")
    for register, path in (("directory", csv), ("assets", assets)):
        print(run_handoff("ledger", register, "import", str(path), env=ledger_env).stdout.strip())
    second = run_handoff("ledger", "users", "totp", CONSOLE_ACCOUNT[0], env=ledger_env).stdout
    print(second.strip())
    found = re.search(r"secret=([A-Z2-7]+)", second)
    assert found, second
    secret = found.group(1)
    ledger = subprocess.Popen(
        [sys.executable, "-m", "handoff", "ledger", "run"], env=handoff_env(ledger_env), stderr=subprocess.DEVNULL
    )
    console.start()
    say(
        f"The ledger's web console is up at {console.url}/ (log in as {CONSOLE_ACCOUNT[0]} / {CONSOLE_ACCOUNT[1]}"
        f" and the one-time code of the address above, now {pyotp.TOTP(secret).now()}, or a recovery code)"
    )

    def start_agent() -> None:
        agent.append(
            subprocess.Popen(
                [sys.executable, "-m", "handoff", "agent", "-c", str(agent_config)],
                env=handoff_env(),
                stderr=subprocess.DEVNULL,
            )
        )

    def wait_for(count: int, timeout: float = 15.0) -> None:
        printer.wait_until(lambda got: len(seqs(got)) >= count, timeout)

    device = f"udp:127.0.0.1:{nfc_port}"

    def tap(who: str, uid: str, hold_s: float = 0.5) -> None:
        say(who)
        run_handoff("sim", "tap", uid, "--device", device, "--hold", str(hold_s), env=env)

    try:
        start_agent()
        time.sleep(1.5)
        ana_started = time.time() + 1.0
        tap("Ana taps her badge: she takes the cart", BADGES["Ana Diaz (RN)"])
        wait_for(1)
        tap(
            "Bo taps his badge while Ana is logged in: a handoff; the workstation's agent logs Ana off",
            BADGES["Bo Chen (MD)"],
        )
        wait_for(5)
        print(f"    (the agent's logoff action wrote: {logged_off.read_text().strip()!r})")
        tap("Bo taps again at once: the re-tap guard ignores it", BADGES["Bo Chen (MD)"])
        say("The workstation's agent stops; Bo walks away and after 6 s his session is locked")
        agent[-1].send_signal(signal.SIGTERM)
        agent[-1].wait(timeout=10)
        wait_for(6)
        say("No receipt within 3 s: the logoff is unconfirmed, and the cart shows amber")
        wait_for(7)
        say("The agent comes back: it logs Bo off and its late receipt still confirms")
        start_agent()
        wait_for(8)
        tap("Bo comes back and taps: reauth with a new session", BADGES["Bo Chen (MD)"])
        wait_for(9)
        tap("A badge nobody knows is tapped", UNKNOWN)
        wait_for(10)
        say("The broker goes down")
        broker.stop()
        tap("Cy taps during the outage: the handoff is kept in the outbox", BADGES["Cy Park (RT)"])
        cy_tapped = time.monotonic()
        time.sleep(0.5)
        print("    " + run_handoff("status", env=env).stdout.strip().replace("\n", "\n    "))
        say("The broker comes back: the buffered events are replayed in order, and the agent answers the handoff")
        broker.start()
        wait_for(14, timeout=30)
        time.sleep(max(0.0, 3.5 - (time.monotonic() - cy_tapped)))
        tap("Cy taps again after the guard: she returns the cart", BADGES["Cy Park (RT)"])
        wait_for(16)
        tap(
            "Code blue: Dee's badge was revoked, so she holds it on the reader for 4 s: break-glass gives her the cart",
            REVOKED[1],
            hold_s=4.5,
        )
        printer.wait_until(lambda got: any(m.topic.endswith("/events/break_glass") for m in got))
        print("    (every break-glass use is for review; Dee may do it twice in 30 days on this cart)")
        time.sleep(1.0)
        say(f"The console's fleet page, as CSV: {console.url}/fleet?format=csv")
        print("    " + fleet_csv(console.url, secret).strip().replace("\n", "\n    "))
        say("The ledger answers: who had the cart, and when?")
        for at in (ana_started + 1.0, time.time()):
            asked = run_handoff("ledger", "who", DEVICE, "--at", rfc3339(at), env=ledger_env)
            answer = asked.stdout.strip() or asked.stderr.strip()
            print(f"    $ handoff ledger who {DEVICE} --at {rfc3339(at)}\n    {answer}")
        shown = run_handoff("ledger", "history", "--device", DEVICE, env=ledger_env)
        print(f"    $ handoff ledger history --device {DEVICE}\n    " + shown.stdout.strip().replace("\n", "\n    "))
        if sys.stdin.isatty():
            say(f"The console stays up at {console.url}/ ({' / '.join(CONSOLE_ACCOUNT)}): press Enter to stop the demo")
            input()
    finally:
        console.stop()
        appliance.send_signal(signal.SIGTERM)
        code = appliance.wait(timeout=10)
        if agent:
            agent[-1].send_signal(signal.SIGTERM)
            agent[-1].wait(timeout=10)
        ledger.send_signal(signal.SIGTERM)
        ledger.wait(timeout=10)
        printer.close()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    received = sorted(seqs(printer.snapshot()))
    gapless = received == list(range(1, len(received) + 1))
    print(
        f"\n{len(received)} events received, seq 1..{received[-1] if received else 0}, "
        f"{'no gaps' if gapless else 'GAPS'}; appliance exited {code}"
    )
    return 0 if gapless and code == 0 and len(received) >= 19 else 1


if __name__ == "__main__":
    sys.exit(main())
