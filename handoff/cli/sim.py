"""`handoff sim tap`, `sim card` and `sim fleet`: badges and appliances without hardware, for tests,
demos, training and the ledger's benchmarks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from handoff.directory import parse_uid
from handoff.errors import UsageError
from handoff.sim.fleet import run_fleet, simulated
from handoff.sim.forger import forge
from handoff.sim.nfc_badge import NfcBadge
from handoff.sim.piv_card import load_applet
from handoff.sim.vpcd import VirtualCard, uid_responder

ACTIVATION_TIMEOUT_S: Final = 5.0


def register(sub: Any) -> None:
    sim = sub.add_parser("sim", help="present simulated badges to a running appliance")
    kinds = sim.add_subparsers(dest="kind", required=True, metavar="KIND", parser_class=type(sim))

    tap = kinds.add_parser("tap", help="present an ISO/IEC 14443-A badge on nfcpy's UDP frontend")
    tap.add_argument("uid", metavar="UID", help="the badge UID in hex: 4, 7 or 10 bytes")
    tap.add_argument("--device", default="udp:127.0.0.1:54321", help="udp:HOST:PORT (default %(default)s)")
    tap.add_argument("--hold", type=_seconds, default=0.5, metavar="S", help="seconds in the field (default 0.5)")
    tap.set_defaults(func=_tap)

    card = kinds.add_parser("card", help="insert a smartcard answering GET UID into the vpcd virtual reader")
    card.add_argument("uid", metavar="UID", help="the card UID in hex: 4, 7 or 10 bytes")
    card.add_argument("--vpcd", default="127.0.0.1:35963", help="HOST:PORT of vpcd (default %(default)s)")
    card.add_argument(
        "--hold",
        type=_seconds,
        default=0.5,
        metavar="S",
        help="seconds it stays after the reader's last command (default 0.5)",
    )
    card.add_argument(
        "--piv-key", type=Path, metavar="KEY", help="PEM private key: the card also answers as a PIV card"
    )
    card.add_argument("--piv-cert", type=Path, metavar="CERT", help="PEM card authentication certificate for --piv-key")
    card.set_defaults(func=_card)

    fleet = kinds.add_parser(
        "fleet",
        help="load generator for the ledger: N lightweight MQTT clients publishing chained events "
        "(it is NOT N appliances: no readers, outbox or state machine)",
    )
    fleet.add_argument("--appliances", type=_positive_int, default=10, metavar="N")
    fleet.add_argument("--rate", type=_positive_float, default=10.0, metavar="R", help="events per second, in all")
    fleet.add_argument("--events", type=_positive_int, metavar="E", help="stop after E events (default: run until ^C)")
    fleet.add_argument("--mqtt", default="mqtt://127.0.0.1:1883", metavar="URL", help="plain MQTT broker URL")
    fleet.add_argument("--prefix", default="handoff/v1", help="topic prefix (default %(default)s)")
    fleet.add_argument("--site", default="sim-site")
    fleet.add_argument(
        "--keys", type=Path, metavar="DIR", help="sign with DIR/DEVICE.key, made with DIR/DEVICE.pub when missing"
    )
    fleet.set_defaults(func=_fleet)

    forged = kinds.add_parser(
        "forge", help="publish a forged checkout on DEVICE's topic, signed by a key nobody enrolled (a demo of trust)"
    )
    forged.add_argument("device", metavar="DEVICE")
    forged.add_argument("--staff", default="mallory", help="who the forgery says took the device (default %(default)s)")
    forged.add_argument("--site", required=True)
    forged.add_argument("--mqtt", default="mqtt://127.0.0.1:1883", metavar="URL", help="plain MQTT broker URL")
    forged.add_argument("--prefix", default="handoff/v1", help="topic prefix (default %(default)s)")
    forged.set_defaults(func=_forge)


def _broker(given: str) -> tuple[str, int]:
    url = urlsplit(given)
    if url.scheme != "mqtt" or not url.hostname:
        raise UsageError(f"--mqtt {given!r}: must be mqtt://HOST:PORT (the simulator speaks plain MQTT only)")
    return url.hostname, url.port or 1883


def _forge(args: argparse.Namespace) -> int:
    host, port = _broker(args.mqtt)
    try:
        event_id = forge(host, port, prefix=args.prefix, site=args.site, device_id=args.device, staff_id=args.staff)
    except OSError as exc:
        raise UsageError(f"--mqtt {args.mqtt}: cannot connect: {exc.strerror or exc}") from None
    print(f"published forged checkout {event_id} by {args.staff} on {args.device}")
    return 0


def _fleet(args: argparse.Namespace) -> int:
    host, port = _broker(args.mqtt)
    try:
        sent = run_fleet(
            host,
            port,
            fleet=simulated(args.appliances, args.prefix, args.site, args.keys),
            rate=args.rate,
            events=args.events,
        )
    except OSError as exc:
        raise UsageError(f"--mqtt {args.mqtt}: cannot connect: {exc.strerror or exc}") from None
    except KeyboardInterrupt:
        return 0
    print(f"published {sent} events from {args.appliances} simulated appliances")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _tap(args: argparse.Namespace) -> int:
    uid = _uid(args.uid)
    host, port = _udp_device(args.device)
    try:
        badge = NfcBadge(uid, host, port)
    except OSError as exc:
        raise UsageError(f"--device {args.device}: cannot listen there: {exc.strerror}") from None
    result = badge.present(args.hold, ACTIVATION_TIMEOUT_S)
    if result.activated_at is None:
        sys.stderr.write(f"handoff: no reader activated the badge on {args.device} within {ACTIVATION_TIMEOUT_S:g} s\n")
        return 1
    return 0


def _card(args: argparse.Namespace) -> int:
    uid = _uid(args.uid)
    host, _, port = args.vpcd.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--vpcd must be HOST:PORT, got {args.vpcd!r}")
    if (args.piv_key is None) != (args.piv_cert is None):
        raise UsageError("--piv-key and --piv-cert go together")
    responder = load_applet(args.piv_key, args.piv_cert, uid).respond if args.piv_key else uid_responder(uid)
    try:
        used = VirtualCard(responder).insert(host, int(port), args.hold, ACTIVATION_TIMEOUT_S)
    except OSError as exc:
        raise UsageError(f"--vpcd {args.vpcd}: cannot reach vpcd ({exc.strerror or exc}); is pcscd running?") from None
    if not used:
        sys.stderr.write(f"handoff: no reader used the card on {args.vpcd} within {ACTIVATION_TIMEOUT_S:g} s\n")
        return 1
    return 0


def _uid(text: str) -> bytes:
    try:
        return parse_uid(text)
    except ValueError as exc:
        raise UsageError(f"UID: {exc}") from None


def _udp_device(device: str) -> tuple[str, int]:
    scheme, _, rest = device.partition(":")
    host, _, port = rest.rpartition(":")
    if scheme != "udp" or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--device must be udp:HOST:PORT, got {device!r}")
    return host, int(port)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be between 0 and 3600 seconds, got {text}")
    return value
