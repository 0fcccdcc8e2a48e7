"""`handoff provision`: config, reader key and CSR, site secret, then a broker check.

Every value comes from a flag; only a terminal gets prompts, so a script or an install run
without one fails at once naming the missing flag instead of hanging.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from handoff.config import Config, default_reader_id, parse_config
from handoff.doctor.broker import check_broker
from handoff.doctor.result import Status
from handoff.errors import ConfigError, UsageError
from handoff.provision.files import write_file
from handoff.provision.pki import build_csr, generate_key, key_pem, load_key
from handoff.provision.render import Table, Value, render_toml

DEFAULT_OUTPUT_DIR: Final = Path("/etc/handoff")
CONFIG_NAME: Final = "handoff.toml"
SECRET_NAME: Final = "badge.key"  # noqa: S105 - a file name
KEY_NAME: Final = "reader.key"
CSR_NAME: Final = "reader.csr"
CERT_NAME: Final = "reader.crt"
SECRET_BYTES: Final = 32


@dataclass(frozen=True)
class Flag:
    """One command-line flag and the config key it fills."""

    flag: str
    section: str
    key: str
    kind: type
    prompt: str = ""
    """Asked on a terminal, required otherwise; empty for optional flags."""

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def config_key(self) -> str:
        return f"{self.section}.{self.key}"


FLAGS: Final = (
    Flag("--site", "appliance", "site", str, "site (e.g. st-elsewhere)"),
    Flag("--device-id", "appliance", "device_id", str, "device id of the attached device (e.g. WOW-3N-07)"),
    Flag("--reader-id", "appliance", "reader_id", str),
    Flag("--data-dir", "appliance", "data_dir", Path),
    Flag("--command-key-file", "appliance", "command_key_file", Path),
    Flag("--idle-timeout-s", "policy", "idle_timeout_s", float),
    Flag("--max-session-s", "policy", "max_session_s", float),
    Flag("--custody-timeout-s", "policy", "custody_timeout_s", float),
    Flag("--retap-guard-s", "policy", "retap_guard_s", float),
    Flag("--mqtt-url", "mqtt", "url", str, "broker URL (mqtts://HOST:PORT)"),
    Flag("--allow-insecure", "mqtt", "allow_insecure", bool),
    Flag("--client-id", "mqtt", "client_id", str),
    Flag("--username", "mqtt", "username", str),
    Flag("--password-file", "mqtt", "password_file", Path),
    Flag("--ca-file", "mqtt", "ca_file", Path),
    Flag("--topic-prefix", "mqtt", "topic_prefix", str),
    Flag("--protocol", "mqtt", "protocol", str),
    Flag("--retention-days", "outbox", "retention_days", float),
    Flag("--board", "feedback", "board", str),
)


def register(sub: Any) -> None:
    parser = sub.add_parser("provision", help="write this cart's config, TLS key and CSR, and site secret")
    for flag in FLAGS:
        if flag.kind is bool:
            parser.add_argument(flag.flag, action="store_true", default=None, help=f"sets {flag.config_key}")
        else:
            parser.add_argument(flag.flag, type=flag.kind, metavar="VALUE", help=f"sets {flag.config_key}")
    parser.add_argument("--nfc", action="append", default=[], metavar="PATH", help="an nfcpy reader path (repeatable)")
    parser.add_argument("--pcsc", action="append", default=[], metavar="NAME", help="a PC/SC reader name (repeatable)")
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--secret-file", type=Path, metavar="FILE", help="install the site's badge secret from FILE")
    secret.add_argument("--generate-secret", action="store_true", help="generate a new site secret (first cart only)")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR, help="default /etc/handoff")
    parser.add_argument("--force", action="store_true", help="overwrite an existing config")
    parser.add_argument("--no-broker-check", action="store_true", help="skip the broker check (offline bench)")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="S", help="broker check timeout (default 5)")
    parser.set_defaults(func=_provision)


def _provision(args: argparse.Namespace) -> int:
    out: Path = args.output_dir.resolve()
    config_path = out / CONFIG_NAME
    if config_path.exists() and not args.force:
        raise UsageError(f"{config_path} exists; pass --force to overwrite it")
    interactive = sys.stdin.isatty()
    for flag in FLAGS:
        if flag.prompt and getattr(args, flag.dest) is None:
            setattr(args, flag.dest, _ask(flag, interactive))
    # Pinned in the file: the certificate's CN must keep matching even if the SD card moves to another Pi.
    args.reader_id = args.reader_id or default_reader_id()
    secret = _secret_bytes(args, out / SECRET_NAME, interactive)
    config = _config(args, config_path)

    out.mkdir(parents=True, exist_ok=True)
    if secret is not None:
        write_file(out / SECRET_NAME, secret, 0o600)
    key_path = out / KEY_NAME
    key = load_key(key_path.read_bytes()) if key_path.exists() else generate_key()
    write_file(key_path, key_pem(key), 0o600)
    app = config.appliance
    write_file(out / CSR_NAME, build_csr(key, app.reader_id, app.site, app.device_id), 0o644)
    write_file(config_path, _toml(args, config_path).encode(), 0o644)
    print(f"wrote {config_path}, {key_path} and {out / CSR_NAME} (reader {app.reader_id})")
    if not (out / CERT_NAME).exists():
        print(f"next: have the site CA sign {out / CSR_NAME} and save the certificate as {out / CERT_NAME}")
    if args.no_broker_check:
        return 0
    result = check_broker(config.mqtt, args.timeout)
    print(result.line())
    return 1 if result.status is Status.FAIL else 0


def _ask(flag: Flag, interactive: bool) -> str:
    if not interactive:
        raise UsageError(f"{flag.flag} is required ({flag.config_key})")
    answer = input(f"{flag.prompt}: ").strip()
    if not answer:
        raise UsageError(f"{flag.flag} is required ({flag.config_key})")
    return answer


def _secret_bytes(args: argparse.Namespace, installed: Path, interactive: bool) -> bytes | None:
    """The secret to install, or None to keep the one already there."""
    source: Path | None = args.secret_file
    if source is None and not args.generate_secret:
        if installed.exists():
            return None
        if not interactive:
            raise UsageError("--secret-file FILE or --generate-secret is required (no site secret installed yet)")
        answer = input("site secret file to install (empty: generate a new one for a new site): ").strip()
        source = Path(answer) if answer else None
    if source is None:
        return secrets.token_hex(SECRET_BYTES).encode() + b"\n"
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise UsageError(f"--secret-file {source} cannot be read: {exc.strerror}") from None
    if len(data.strip()) < 16:
        raise UsageError(f"--secret-file {source} holds {len(data.strip())} bytes; at least 16 are needed")
    return data


def _tables(args: argparse.Namespace, out: Path) -> dict[str, dict[str, Value]]:
    tables: dict[str, dict[str, Value]] = {s: {} for s in ("appliance", "policy", "mqtt", "outbox", "feedback")}
    tables["appliance"]["badge_secret_file"] = str(out / SECRET_NAME)
    for flag in FLAGS:
        value = getattr(args, flag.dest)
        if isinstance(value, Path):
            value = str(value.resolve())
        if value is not None:
            tables[flag.section][flag.key] = value
    tables["mqtt"]["cert_file"] = str(out / CERT_NAME)
    tables["mqtt"]["key_file"] = str(out / KEY_NAME)
    return tables


def _readers(args: argparse.Namespace) -> list[Table]:
    return [{"kind": "nfc", "path": p} for p in args.nfc] + [{"kind": "pcsc", "name": n} for n in args.pcsc]


def _toml(args: argparse.Namespace, config_path: Path) -> str:
    return render_toml(_tables(args, config_path.parent), {"readers": _readers(args)})


def _config(args: argparse.Namespace, config_path: Path) -> Config:
    """Validate the TOML exactly as `handoff run` will read it, naming the flag at fault."""
    raw = tomllib.loads(_toml(args, config_path))
    try:
        return parse_config(raw, config_path)
    except ConfigError as exc:
        problem = str(exc).removeprefix(f"config {config_path}: ")
        for flag in FLAGS:
            if problem.startswith(flag.config_key):
                raise UsageError(f"{flag.flag}: {problem}") from None
        raise UsageError(problem) from None
