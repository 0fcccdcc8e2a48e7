"""`make demo`: the whole job on one machine, in about a minute, checking itself as it goes.

Starts a throwaway mosquitto, an appliance with demo badges and short timers that signs what it
publishes, the agent of the attached workstation (its logoff action writes a line to a file, as
an EHR logoff script would), the ledger with the appliance's key enrolled, the directory's names
and the asset register imported, and its web console with a demo admin whose logins need a
one-time code (TOTP), and a subscriber that prints each event as one line;
then plays a shift, step by step: handoffs, the agent's receipts, an outage, a forgery, emergency
access (break-glass) by a revoked badge held on the reader and its review in the console, the
console's pages and search, and the evidence report's summary.
Each step says what should happen, does it, waits for the events it announced and says what it
saw; when they differ the demo stops there, names the step and exits 1. Whatever it started is
stopped on every way out (an error, Ctrl-C, SIGTERM).

A step is a `Step` in `SHIFT`: what it says, what it does, the events it expects (in order, or
in any order where two programs race), and optionally a check of its own. Add one there.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from http.cookiejar import CookieJar
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote, urlencode
from urllib.request import HTTPCookieProcessor, OpenerDirector, build_opener

import pyotp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from handoff.audit.keys import public_pem
from handoff.provision.render import render_toml
from handoff.testing.broker import Broker
from handoff.testing.child import spawn_handoff, stop_child
from handoff.testing.cli import run_handoff
from handoff.testing.collector import Collector, Message
from handoff.testing.config import DEVICE, PREFIX, READER, SITE, Layout
from handoff.testing.ledger import Console, audit_key
from handoff.testing.net import free_udp_port
from handoff.testing.nfc import wait_for_polling
from handoff.timefmt import rfc3339

BADGES = {"ana": "04A1B2C3", "bo": "04A1B2C3D4E5F6", "cy": "04A1B2C3D4E5F6071829", "dee": "04C0FFEE"}
NAMES = {"ana": "Ana Diaz,RN", "bo": "Bo Chen,MD", "cy": "Cy Park,RT", "dee": "Dee Lin,RN"}
UNKNOWN = "04DEADBEEF0001"
MODEL, ASSET_TAG = "Capsa M38e", "BIO-004711"
"""The cart in the ledger's asset register: what the console shows, and finds it by."""
REVOKED = "dee"
"""A badge the directory still knows but has revoked: refused, unless its holder breaks the glass."""
POLICY = {
    "idle_timeout_s": 12,
    "max_session_s": 600,
    "custody_timeout_s": 600,
    "retap_guard_s": 4,
    "break_glass_hold_s": 3,
}
CONFIRM_S = 10
EHR_LOGOFF = [sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write(f'logged off {sys.argv[2]}\\n')"]
"""The demo's stand-in for an EHR's logoff script: it notes whom it logged off."""
CONSOLE_ACCOUNT = ("demo", "demo-console-password")
HOLD_S = 0.8
"""How long a badge stays on the reader: long enough for a reader on a loaded machine to read it."""
STEP_S = 30.0
"""How long a step waits for what it announced before calling it missing."""
ANY = object()
OUT = sys.stdout
"""Where the demo prints, also from the subscriber's thread while a command's output is captured."""


class StepFailed(Exception):
    """What a step announced did not happen; the message says what was seen instead."""


@dataclass(frozen=True)
class Expect:
    """An event a step announces: its type and holder, and its reason unless ANY."""

    kind: str
    staff: str | None
    reason: object = ANY

    def matches(self, event: dict[str, Any]) -> bool:
        data = event["data"]
        return (
            event["type"] == f"org.handoff.{self.kind}"
            and data.get("staff_id") == self.staff
            and (self.reason is ANY or data.get("reason") == self.reason)
        )

    def __str__(self) -> str:
        reason = "" if self.reason is ANY else f", {self.reason}"
        return f"{self.kind}({self.staff}{reason})"


def described(event: dict[str, Any]) -> str:
    data = event["data"]
    reason = f", {data['reason']}" if data.get("reason") else ""
    return f"{event['type'].removeprefix('org.handoff.')}({data.get('staff_id')}{reason})"


@dataclass(frozen=True)
class Step:
    says: str
    act: Callable[[Demo], None]
    expects: Sequence[Expect] = ()
    in_any_order: bool = False
    """The expected events may come in any order: two programs (the appliance and the agent) race."""
    check: Callable[[Demo], str] | None = None
    """Checks something besides the events and returns what it saw; raises StepFailed otherwise."""


class Demo:
    """Everything the shift runs against, started in `started` and stopped on any exit."""

    def __init__(self, work: Path, stack: ExitStack) -> None:
        self.work, self.stack = work, stack
        self.started = time.time()
        self.broker = Broker(work / "broker")
        self.broker.start()
        stack.callback(self.broker.stop)
        self.device = f"udp:127.0.0.1:{free_udp_port()}"
        self.agent_key, agents = work / "agent.key", work / "agents.pem"
        agents.write_text(self.cli("agent", "keygen", "--out", self.agent_key, env={}))
        signing_key, key = audit_key(work)
        self.audit_pub = work / "audit.pub"
        self.audit_pub.write_bytes(public_pem(key))
        self.config = Layout.create(work).configure(
            port=self.broker.port,
            readers=[{"kind": "nfc", "path": self.device}],
            policy=POLICY,
            agent={"keys_file": str(agents), "confirm_s": CONFIRM_S},
            audit={"key_file": str(signing_key)},
        )
        self.env = {"HANDOFF_CONFIG": str(self.config)}
        self.logged_off = work / "ehr-logoffs.txt"
        self.agent_config = self._agent_config()
        csv = work / "badges.csv"
        csv.write_text(
            "uid,staff_id,name,role,revoked\n"
            + "".join(f"{BADGES[s]},{s},{NAMES[s]},{str(s == REVOKED).lower()}\n" for s in BADGES)
        )
        print(self.cli("badges", "import", csv).strip())
        self.events = Collector(self.broker.port, f"{PREFIX}/events/#", on_message=show)
        stack.callback(self.events.close)
        self.seen = 0
        """Events already matched by earlier steps."""
        self.tapped: dict[str, float] = {}
        self.appliance_log = work / "appliance.log"
        with self.appliance_log.open("ab") as log:
            self.appliance = spawn_handoff("run", env=self.env, stderr=log)
        self.appliance_code: int | None = None
        stack.callback(self._stop_appliance)
        self.console = Console(work, f"sqlite:///{work / 'ledger.db'}", self.broker.port)
        self.console.add_user(CONSOLE_ACCOUNT[0], "admin", CONSOLE_ACCOUNT[1])
        self.ledger_env = {"HANDOFF_LEDGER_CONFIG": str(self.console.config)}
        assets = work / "assets.csv"
        assets.write_text(f"device_id,model,unit,asset_tag,site\n{DEVICE},{MODEL},3 North,{ASSET_TAG},{SITE}\n")
        for register, path in (("directory", csv), ("assets", assets)):
            print(self.cli("ledger", register, "import", path, env=self.ledger_env).strip())
        second = self.cli("ledger", "users", "totp", CONSOLE_ACCOUNT[0], env=self.ledger_env)
        print(second.strip())
        found = re.search(r"secret=([A-Z2-7]+)", second)
        if found is None:
            raise StepFailed(f"`handoff ledger users totp` printed no secret: {second!r}")
        self.totp = pyotp.TOTP(found.group(1))
        self._browser: OpenerDirector | None = None
        print(self.cli("ledger", "enrol", DEVICE, "--key", self.audit_pub, "--agent-key", agents, env=self.ledger_env))
        with (work / "ledger.log").open("ab") as log:
            ledger = spawn_handoff("ledger", "run", env=self.ledger_env, stderr=log)
        stack.callback(stop_child, ledger)
        self.console.start()
        stack.callback(self.console.stop)
        self.agent = self.start_agent()
        wait_for_polling(self.device)

    def _agent_config(self) -> Path:
        path = self.work / "agent.toml"
        agent = {
            "site": SITE,
            "device_id": DEVICE,
            "agent_id": "ws-3n-07",
            "key_file": str(self.agent_key),
            "appliance_key": str(self.audit_pub),
            "data_dir": str(self.work / "agent"),
        }
        mqtt = {"url": f"mqtt://127.0.0.1:{self.broker.port}", "allow_insecure": True}
        action = {"kind": "command", "argv": [*EHR_LOGOFF, str(self.logged_off), "{staff_id}"]}
        tables = {"agent": agent, "mqtt": mqtt, "activity": {"kind": "none"}}
        path.write_text(render_toml(tables, {"actions": [action]}))
        return path

    def cli(self, *args: str | Path, env: dict[str, str] | None = None) -> str:
        """A short `handoff` command through its entry point; its stdout, or StepFailed naming it."""
        done = run_handoff(*args, env=self.env if env is None else env)
        if done.returncode != 0:
            raise StepFailed(f"`handoff {' '.join(map(str, args))}` exited {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    def start_agent(self) -> Any:
        log = self.work / "agent.log"
        before = log.read_text().count("connected to") if log.exists() else 0
        with log.open("ab") as out:
            agent = spawn_handoff("agent", "-c", self.agent_config, stderr=out)
        self.stack.callback(stop_child, agent)
        deadline = time.monotonic() + STEP_S
        while log.read_text().count("connected to") <= before:
            if agent.poll() is not None or time.monotonic() > deadline:
                raise StepFailed(f"the agent did not connect: {log.read_text().strip()[-300:]}")
            time.sleep(0.05)
        return agent

    def stop_agent(self) -> None:
        stop_child(self.agent)

    def restart_agent(self) -> None:
        self.agent = self.start_agent()

    def tap(self, who: str, hold_s: float = HOLD_S) -> None:
        self.cli("sim", "tap", BADGES.get(who, who), "--device", self.device, "--hold", str(hold_s))
        self.tapped[who] = time.monotonic()

    def console_page(self, path: str) -> tuple[str, str]:
        """The console's page at `path` (its final address after redirects, and its text), the way a
        browser gets it: logged in once as the demo admin, with the login form's token, the
        account's one-time code, then the session cookie (a code is good for one login only)."""
        if self._browser is None:
            browser = build_opener(HTTPCookieProcessor(CookieJar()))
            form = browser.open(f"{self.console.url}/login", timeout=10).read().decode()
            token = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            name, password = CONSOLE_ACCOUNT
            fields = {"csrf": token, "name": name, "password": password, "code": self.totp.now(), "next": path}
            with browser.open(f"{self.console.url}/login", urlencode(fields).encode(), timeout=10) as page:
                self._browser = browser
                return page.geturl(), page.read().decode()
        with self._browser.open(f"{self.console.url}{path}", timeout=10) as page:
            return page.geturl(), page.read().decode()

    def console_form(self, path: str, fields: dict[str, str]) -> str:
        """Sends a form on the console's page at `path`, with that page's token, as a browser
        does; the text of the page it lands on."""
        _, page = self.console_page(path)
        token = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        assert self._browser is not None
        body = urlencode({"csrf": token, **fields}).encode()
        with self._browser.open(f"{self.console.url}{path}", body, timeout=10) as answer:
            return str(answer.read().decode())

    def tap_after_guard(self, who: str) -> None:
        """The re-tap guard is a timer: the second tap waits it out from the first one."""
        time.sleep(max(0.0, self.tapped[who] + POLICY["retap_guard_s"] + 0.2 - time.monotonic()))
        self.tap(who)

    def received(self, messages: list[Message] | None = None) -> list[dict[str, Any]]:
        """Each event once, in the order it first arrived: delivery is at least once, so an event
        resent after the broker's restart is the same event (same id)."""
        unique: dict[str, dict[str, Any]] = {}
        for message in self.events.snapshot() if messages is None else messages:
            event = message.json()
            unique.setdefault(event["id"], event)
        return list(unique.values())

    def next_events(self, count: int) -> list[dict[str, Any]]:
        """The `count` events after those earlier steps took, waiting for them up to STEP_S."""
        wanted = self.seen + count
        got = self.received(self.events.wait_until(lambda got: len(self.received(got)) >= wanted, STEP_S))
        self.seen = min(len(got), wanted)
        return got[wanted - count : wanted]

    def appliance_logged(self, words: str) -> str:
        deadline = time.monotonic() + STEP_S
        while words not in self.appliance_log.read_text():
            if time.monotonic() > deadline:
                raise StepFailed(f"the appliance never logged {words!r}")
            time.sleep(0.05)
        return f"the appliance logged {words!r}"

    def _stop_appliance(self) -> None:
        self.appliance_code = stop_child(self.appliance)


def show(message: Message) -> None:
    """One readable line per event, as an integration engineer's subscriber would print it."""
    event = message.json()
    data = event["data"]
    keys = ("staff_id", "previous_staff_id", "reason", "previous_logoff")
    details = [f"{key}={data[key]}" for key in keys if data.get(key)]
    print(f"    ← seq {data['seq']:>2}  {event['type'].removeprefix('org.handoff.'):<18} {' '.join(details)}", file=OUT)


def run_step(demo: Demo, number: int, step: Step) -> None:
    print(f"\n▶ {number}. {step.says}", file=OUT, flush=True)
    step.act(demo)
    got = demo.next_events(len(step.expects))
    saw = ", ".join(map(described, got)) or "no event"
    if not as_expected(step, got):
        raise StepFailed(f"expected {', '.join(map(str, step.expects)) or 'no event'}; saw {saw}")
    print(f"    ✓ saw {saw}" + (f"; {step.check(demo)}" if step.check else ""), file=OUT, flush=True)


def as_expected(step: Step, got: list[dict[str, Any]]) -> bool:
    if len(got) != len(step.expects):
        return False
    if not step.in_any_order:
        return all(expect.matches(event) for expect, event in zip(step.expects, got, strict=True))
    left = list(got)
    for expect in step.expects:
        found = next((event for event in left if expect.matches(event)), None)
        if found is None:
            return False
        left.remove(found)
    return True


def ehr_logged_off(*names: str) -> Callable[[Demo], str]:
    def check(demo: Demo) -> str:
        lines = demo.logged_off.read_text().splitlines() if demo.logged_off.exists() else []
        if lines != [f"logged off {name}" for name in names]:
            raise StepFailed(f"the EHR logoff script wrote {lines}, not a logoff of {', '.join(names)}")
        return f"the agent's logoff action wrote {lines[-1]!r}"

    return check


def buffered(demo: Demo) -> str:
    line = next(line for line in demo.cli("status").splitlines() if line.startswith("outbox:"))
    if int(line.split()[1]) < 3:
        raise StepFailed(f"`handoff status` says {line!r}: the handoff's 3 events are not waiting in the outbox")
    return f"`handoff status` says {line!r}"


def forge(demo: Demo) -> None:
    print(
        "    "
        + demo.cli("sim", "forge", DEVICE, "--site", SITE, "--mqtt", f"mqtt://127.0.0.1:{demo.broker.port}").strip(),
        file=OUT,
    )


def forgery_kept_apart(demo: Demo) -> str:
    """The ledger opens `untrusted_source` for the forger and still says nobody holds the cart."""
    deadline = time.monotonic() + STEP_S
    while True:
        flagged = json.loads(demo.cli("ledger", "exceptions", "--format", "json", env=demo.ledger_env))
        untrusted = [f for f in flagged if f["type"] == "untrusted_source"]
        if untrusted:
            break
        if time.monotonic() > deadline:
            raise StepFailed(f"the ledger opened no untrusted_source exception: {flagged}")
        time.sleep(0.2)
    now = who(demo, time.time())
    if now["staff_id"] is not None:
        raise StepFailed(f"the ledger believed the forgery: `ledger who` says {now}")
    return f"the ledger kept it apart (untrusted_source from {untrusted[0]['source']}) and says nobody holds the cart"


def outage(demo: Demo) -> None:
    demo.broker.stop()
    demo.tap("cy")


def who(demo: Demo, at: float) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(
        demo.cli("ledger", "who", DEVICE, "--at", rfc3339(at), "--format", "json", env=demo.ledger_env)
    )
    return answer


def ledger_answers(demo: Demo) -> str:
    """The ledger's record, once it holds every event: who held the cart during Ana's first
    minutes (asked at a time between her checkout and the handoff), now, and the history."""
    expected = [("ana", "handoff"), ("bo", "handoff"), ("cy", "returned"), (REVOKED, "returned")]
    deadline = time.monotonic() + STEP_S
    while True:
        shown = json.loads(demo.cli("ledger", "history", "--device", DEVICE, "--format", "json", env=demo.ledger_env))
        intervals = [(row["staff_id"], row["ended_by"]) for row in shown]
        if intervals == expected:
            break
        if time.monotonic() > deadline:
            raise StepFailed(f"the ledger's history is {intervals}, not {expected}")
        time.sleep(0.2)
    events = demo.received()
    checkout = next(e for e in events if Expect("checkout", "ana").matches(e))
    handoff = next(e for e in events if Expect("forced_logoff", "ana").matches(e))
    between = (epoch(checkout["time"]) + epoch(handoff["time"])) / 2
    then, now = who(demo, between), who(demo, time.time())
    if (then["staff_id"], then["logged_in"], now["staff_id"]) != ("ana", True, None):
        raise StepFailed(f"`ledger who` answered {then} then {now}: not Ana logged in, then nobody")
    return f"who: ana (logged in) at {then['at']}, nobody now; history: {intervals}"


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def console_fleet(demo: Demo) -> str:
    """The fleet page as CSV shows the cart available: nobody holds it once Dee returned it."""
    _, table = demo.console_page("/fleet?format=csv")
    rows = [line for line in table.strip().splitlines() if DEVICE in line]
    if len(rows) != 1 or "available" not in rows[0]:
        raise StepFailed(f"the fleet page does not show {DEVICE} available: {table!r}")
    return f"the fleet page's row: {rows[0]}"


def console_search(demo: Demo) -> str:
    """The search box: an asset tag goes straight to its device's page, a name finds the person."""
    address, _ = demo.console_page(f"/search?{urlencode({'q': ASSET_TAG})}")
    if not address.endswith(f"/{quote(DEVICE, safe='')}"):
        raise StepFailed(f"searching {ASSET_TAG} led to {address}, not {DEVICE}'s page")
    _, found = demo.console_page(f"/search?{urlencode({'q': 'Lin'})}")
    if "Dee Lin" not in found:
        raise StepFailed("searching 'Lin' did not find Dee Lin")
    return f"{ASSET_TAG} opens {address.removeprefix(demo.console.url)}; 'Lin' finds Dee Lin"


def break_glass(demo: Demo) -> None:
    demo.tap(REVOKED, hold_s=POLICY["break_glass_hold_s"] + 1.5)


def break_glass_recorded(demo: Demo) -> str:
    """The checkout says it was a break-glass one, for the review every use gets."""
    checkout = next(e for e in reversed(demo.received()) if Expect("checkout", REVOKED).matches(e))
    if checkout["data"].get("break_glass") is not True:
        raise StepFailed(f"Dee's checkout does not say break_glass: {checkout['data']}")
    return "her checkout carries break_glass=true, for review; she may do it twice in 30 days on this cart"


def break_glass_reviewed(demo: Demo) -> str:
    """The admin opens the review the ledger made for Dee's use, sees her emergency session on
    the cart, and closes it with a note: only such a review closes it."""
    deadline = time.monotonic() + STEP_S
    while not (found := re.search(r'href="(/exceptions/(\d+)/review)"', demo.console_page("/exceptions")[1])):
        if time.monotonic() > deadline:
            raise StepFailed("the exceptions queue has no break-glass review to open")
        time.sleep(0.2)
    review = found.group(1)
    _, page = demo.console_page(review)
    if not all(kind in page for kind in ("break_glass", "checkout", "checkin", "1 of a limit of 2")):
        raise StepFailed(f"the review page at {review} does not show Dee's session and her count")
    done = demo.console_form(review, {"note": "code blue in 3 North, confirmed with the charge nurse"})
    if "Reviewed by" not in done:
        raise StepFailed(f"the review at {review} did not close")
    return f"{review} shows her session (break_glass, checkout, checkin, the agent's receipt); closed with a note"


def report_summary(demo: Demo) -> str:
    """`handoff ledger report` over the demo so far, as JSON, summarised."""
    start, end = rfc3339(demo.started - 60), rfc3339(time.time() + 60)
    text = demo.cli("ledger", "report", "--from", start, "--until", end, "--format", "json", env=demo.ledger_env)
    figures = json.loads(text)["figures"]
    if figures["break_glass_uses"] != 1 or figures["break_glass_reviewed"] != 1 or figures["idle_timeouts"] < 1:
        raise StepFailed(f"the report's figures are not the shift's: {figures}")
    share = figures["confirmed_share"]
    return (
        f"{figures['checkouts']} checkouts, {figures['forced_logoffs']} forced logoffs "
        f"({figures['idle_timeouts']} idle), {share:.0%} confirmed by the agent, median "
        f"{figures['confirmation_median_s']:.1f} s; break-glass {figures['break_glass_uses']} use, "
        f"{figures['break_glass_reviewed']} reviewed (also as printable HTML and CSV: --format html|csv)"
    )


SHIFT = [
    Step("Ana taps her badge: she takes the cart", lambda d: d.tap("ana"), [Expect("checkout", "ana")]),
    Step(
        "Bo taps his badge while Ana is logged in: a handoff",
        lambda d: d.tap("bo"),
        [Expect("forced_logoff", "ana", "handoff"), Expect("checkin", "ana", "handoff"), Expect("checkout", "bo")],
    ),
    Step(
        "Bo taps again at once: the re-tap guard ignores it, while the workstation's agent confirms Ana's logoff",
        lambda d: d.tap("bo"),
        [Expect("logoff_confirmed", "ana")],
        check=lambda d: d.appliance_logged("retap_guard") + "; " + ehr_logged_off("ana")(d),
    ),
    Step(
        f"The workstation's agent stops; Bo walks away and after {POLICY['idle_timeout_s']} s his session is locked",
        Demo.stop_agent,
        [Expect("forced_logoff", "bo", "idle_timeout")],
    ),
    Step(
        f"No receipt within {CONFIRM_S} s: the logoff is unconfirmed, and the cart shows amber",
        lambda d: None,
        [Expect("logoff_unconfirmed", "bo", "timeout")],
    ),
    Step(
        "The agent comes back: it logs Bo off and its late receipt still confirms",
        Demo.restart_agent,
        [Expect("logoff_confirmed", "bo")],
        check=ehr_logged_off("ana", "bo"),
    ),
    Step("Bo comes back and taps: reauth, with a new session", lambda d: d.tap("bo"), [Expect("reauth", "bo")]),
    Step("A badge nobody knows is tapped", lambda d: d.tap(UNKNOWN), [Expect("tap_rejected", None, "unknown_badge")]),
    Step("The broker goes down; Cy taps during the outage: the handoff waits in the outbox", outage, check=buffered),
    Step(
        "The broker comes back: the buffered events arrive in order, and the agent answers for Bo",
        lambda d: d.broker.start(),
        [
            Expect("forced_logoff", "bo", "handoff"),
            Expect("checkin", "bo", "handoff"),
            Expect("checkout", "cy"),
        ],
    ),
    Step(
        "Cy taps again after the re-tap guard: she returns the cart",
        lambda d: d.tap_after_guard("cy"),
        [Expect("logoff_confirmed", "bo"), Expect("checkin", "cy", "returned"), Expect("logoff_confirmed", "cy")],
        in_any_order=True,
    ),
    Step(
        "A forger with publish rights posts a checkout by mallory on the cart's topic, under a key nobody enrolled",
        forge,
        [Expect("checkout", "mallory")],
        check=forgery_kept_apart,
    ),
    Step(
        "Code blue: Dee's badge was revoked, so she holds it on the reader: break-glass gives her the cart",
        break_glass,
        [
            Expect("tap_rejected", None, "revoked"),
            Expect("break_glass", REVOKED, "revoked"),
            Expect("checkout", REVOKED),
        ],
        check=break_glass_recorded,
    ),
    Step(
        "Dee taps again after the re-tap guard: she returns the cart",
        lambda d: d.tap_after_guard(REVOKED),
        [Expect("checkin", REVOKED, "returned"), Expect("logoff_confirmed", REVOKED)],
        in_any_order=True,
    ),
    Step("The ledger answers: who had the cart, and when?", lambda d: None, check=ledger_answers),
    Step(
        "The console's fleet page, as CSV, logged in with the admin's one-time code",
        lambda d: None,
        check=console_fleet,
    ),
    Step("The console's search box: an asset tag, then a name", lambda d: None, check=console_search),
    Step(
        "An admin reviews Dee's break-glass use in the console, with a note", lambda d: None, check=break_glass_reviewed
    ),
    Step("The evidence report for the quarterly review, in brief", lambda d: None, check=report_summary),
]


@contextmanager
def stopped_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP end the demo through its `finally`, as Ctrl-C does."""

    def leave(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, leave) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, action in previous.items():
            signal.signal(sig, action)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="handoff-demo-"))
    number, step = 0, None
    with stopped_on_signals():
        try:
            with ExitStack() as stack:
                demo = Demo(work, stack)
                print(
                    f"\n▶ The ledger's console is up at {demo.console.url}/ ({' / '.join(CONSOLE_ACCOUNT)} and the"
                    f" one-time code of the address above, now {demo.totp.now()}, or a recovery code)"
                )
                for number, step in enumerate(SHIFT, 1):
                    run_step(demo, number, step)
                if sys.stdin.isatty():
                    print(f"\n▶ The console stays up at {demo.console.url}/: press Enter to stop the demo")
                    input()
            ours = f"urn:handoff:{SITE}:{READER}"
            seqs = [int(event["data"]["seq"]) for event in demo.received() if event["source"] == ours]
        except Exception as failure:  # every failure names where it happened, and what was started is stopped
            where = f"step {number} ({step.says})" if step else "setting up"
            if not isinstance(failure, StepFailed):
                traceback.print_exc()
            print(f"\ndemo FAILED at {where}: {failure}\n(the logs are kept in {work})", file=sys.stderr)
            return 1
    if seqs != list(range(1, len(seqs) + 1)) or demo.appliance_code != 0:
        print(f"\ndemo FAILED at the end: seq {seqs}, appliance exited {demo.appliance_code}", file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print(f"\nevery step as narrated: {len(seqs)} events, seq 1..{len(seqs)} without gaps; the appliance exited 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
