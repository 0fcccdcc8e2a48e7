"""`handoff provision`: config, reader key and CSR, site secret, then a broker check.

Every value comes from a flag; only a terminal gets prompts, so a script or an install run
without one fails at once naming the missing flag instead of hanging.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
import tomllib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import msgspec
import serial
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from handoff.audit.keys import load_signing_key, private_pem, public_pem
from handoff.audit.signature import fingerprint
from handoff.config import READER_KINDS, SECTIONS, Config, OsdpReaderConfig, default_reader_id, parse_config
from handoff.doctor.broker import check_broker
from handoff.doctor.result import Status
from handoff.errors import ConfigError, UsageError
from handoff.feedback.board import default_board
from handoff.provision.files import write_file
from handoff.provision.pki import build_csr, generate_key, key_pem, load_key
from handoff.provision.render import Value, render_toml
from handoff.readers.osdp import install_site_key
from handoff.readers.scbk import load_scbk, new_scbk, scbk_text

DEFAULT_OUTPUT_DIR: Final = Path("/etc/handoff")
CONFIG_NAME: Final = "handoff.toml"
SECRET_NAME: Final = "badge.key"  # noqa: S105 - a file name
KEY_NAME: Final = "reader.key"
CSR_NAME: Final = "reader.csr"
AUDIT_KEY_NAME: Final = "audit.key"
AUDIT_PUB_NAME: Final = "audit.pub"
CERT_NAME: Final = "reader.crt"
SECRET_BYTES: Final = 32


@dataclass(frozen=True)
class Flag:
    """One command-line flag, derived from a config key of the schema."""

    flag: str
    section: str
    """A table of the file (`mqtt`), or a reader kind (`pcsc`) for `[[readers]]` keys."""
    key: str
    kind: type
    prompt: str = ""
    """Asked on a terminal, required otherwise; empty for optional flags."""
    starts_reader: bool = False
    """`--nfc PATH`, `--pcsc NAME`...: adds a reader; the kind's other flags then set its keys."""

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def config_key(self) -> str:
        return (
            f"readers[].{self.key} ({self.section})" if self.section in READER_KINDS else f"{self.section}.{self.key}"
        )


def _extra(field: msgspec.structs.FieldInfo) -> dict[str, object]:
    """What the key's `msgspec.Meta(extra=...)` tells provision: its flag, prompt, whether it is a reader's primary."""
    extra: dict[str, object] = {}
    for meta in getattr(field.type, "__metadata__", ()):
        if isinstance(meta, msgspec.Meta) and meta.extra:
            extra.update(meta.extra)
    return extra


def _value_type(annotation: object) -> type:
    """The Python type argparse converts a flag's text to, from the field's annotation."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is Literal:
        return type(args[0])
    if origin is not None and args:
        return _value_type(args[0])
    return annotation if isinstance(annotation, type) else str


def _derive_flags() -> tuple[Flag, ...]:
    """Every key of every table that provision does not fill itself, and every key of every reader kind."""
    flags = []
    for section, model in SECTIONS.items():
        for field in msgspec.structs.fields(model):
            extra = _extra(field)
            if extra.get("provision") is False:
                continue
            name = str(extra.get("flag") or f"--{model.flag_prefix}{field.name}".replace("_", "-"))
            flags.append(Flag(name, section, field.name, _value_type(field.type), str(extra.get("prompt", ""))))
    for kind, reader in READER_KINDS.items():
        for field in msgspec.structs.fields(reader):
            primary = _extra(field).get("primary") is True
            name = f"--{kind}" if primary else f"--{kind}-{field.name}".replace("_", "-")
            flags.append(Flag(name, kind, field.name, _value_type(field.type), starts_reader=primary))
    return tuple(flags)


FLAGS: Final = _derive_flags()


class _ReaderFlag(argparse.Action):
    """Builds `args.readers` in command-line order: a kind's flag starts a reader, its other flags set keys on it."""

    def __init__(self, *args: Any, spec: Flag, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spec = spec

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option: str | None = None) -> None:
        readers = [dict(reader) for reader in namespace.readers]
        namespace.readers = readers
        value = True if self.spec.kind is bool else _toml_value(values)
        if self.spec.starts_reader:
            readers.append({"kind": self.spec.section, self.spec.key: value})
            return
        own = [r for r in readers if r["kind"] == self.spec.section]
        if not own:
            parser.error(f"{self.spec.flag} must follow a --{self.spec.section} that it applies to")
        own[-1][self.spec.key] = value


def _add_flag(parser: argparse.ArgumentParser, flag: Flag) -> None:
    if flag.section not in READER_KINDS:
        if flag.kind is bool:
            parser.add_argument(flag.flag, action="store_true", default=None, help=f"sets {flag.config_key}")
        else:
            parser.add_argument(flag.flag, type=flag.kind, metavar="VALUE", help=f"sets {flag.config_key}")
        return
    kind = flag.section
    what = f"adds a reader of kind {kind}" if flag.starts_reader else f"sets {flag.key} of the last --{kind}"
    if flag.kind is bool:
        parser.add_argument(flag.flag, action=_ReaderFlag, spec=flag, nargs=0, help=what)
    else:
        parser.add_argument(flag.flag, action=_ReaderFlag, spec=flag, type=flag.kind, metavar="VALUE", help=what)


def register(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(readers=())
    for flag in FLAGS:
        _add_flag(parser, flag)
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--secret-file", type=Path, metavar="FILE", help="install the site's badge secret from FILE")
    secret.add_argument("--generate-secret", action="store_true", help="generate a new site secret (first cart only)")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR, help="default /etc/handoff")
    parser.add_argument("--force", action="store_true", help="overwrite an existing config")
    parser.add_argument(
        "--osdp-install",
        action="store_true",
        help="give each OSDP reader, still in install mode (default key), the site key from its scbk file "
        "(made if missing); once per reader",
    )
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
    if args.board is None:
        args.board = default_board()
        if args.board == "none":
            print('feedback.board = "none": not a Raspberry Pi, so no GPIO lights or buzzer; --board picks a pin map')
    config = _config(args, config_path)

    out.mkdir(parents=True, exist_ok=True)
    if secret is not None:
        write_file(out / SECRET_NAME, secret, 0o600)
    key_path = out / KEY_NAME
    key = _existing_key(key_path) if key_path.exists() else generate_key()
    write_file(key_path, key_pem(key), 0o600)
    app = config.appliance
    write_file(out / CSR_NAME, build_csr(key, app.reader_id, app.site, app.device_id), 0o644)
    if config.audit is not None and config.audit.key_file == out / AUDIT_KEY_NAME:
        audit_key = _audit_key(config.audit.key_file)
        write_file(out / AUDIT_KEY_NAME, private_pem(audit_key), 0o600)
        write_file(out / AUDIT_PUB_NAME, public_pem(audit_key), 0o644)
        print(
            f"everything this cart publishes is signed with {out / AUDIT_KEY_NAME}; "
            f"give {out / AUDIT_PUB_NAME} to the auditors and the ledger (handoff ledger enrol)"
        )
        print(
            f"appliance key fingerprint: {fingerprint(audit_key)} (compare it in the ledger's console when enrolling)"
        )
    write_file(config_path, _toml(args, config_path).encode(), 0o644)
    print(f"wrote {config_path}, {key_path} and {out / CSR_NAME} (reader {app.reader_id})")
    if not (out / CERT_NAME).exists():
        print(f"next: have the site CA sign {out / CSR_NAME} and save the certificate as {out / CERT_NAME}")
    keyed = _install_osdp_keys(config) if args.osdp_install else True
    if args.no_broker_check:
        return 0 if keyed else 1
    result = check_broker(config.mqtt, args.timeout)
    print(result.line())
    return 1 if result.status is Status.FAIL or not keyed else 0


def _install_osdp_keys(config: Config) -> bool:
    """osdp_KEYSET on each OSDP reader; the key file is made first if this is the site's first reader."""
    keyed = True
    for index, reader in enumerate(config.readers):
        if not isinstance(reader, OsdpReaderConfig):
            continue
        name = f"readers[{index}].scbk_file"
        if not reader.scbk_file.exists():
            write_file(reader.scbk_file, scbk_text(new_scbk()), 0o600)
            print(f"made a new site key in {reader.scbk_file}; copy it to this site's other carts")
        where = f"the OSDP reader at address {reader.address} on {reader.port}"
        try:
            problem = install_site_key(reader.port, reader.address, reader.baud, load_scbk(reader.scbk_file, name))
        except (serial.SerialException, OSError) as exc:
            problem = f"cannot open {reader.port}: {exc}"
        if problem is None:
            print(f"site key set on {where} (Secure Channel checked with it)")
        else:
            keyed = False
            print(f"FAIL {where}: {problem}", file=sys.stderr)
    return keyed


def _audit_key(path: Path) -> Ed25519PrivateKey:
    """Kept across re-provisioning: the auditors already trust its public key."""
    if not path.exists():
        return Ed25519PrivateKey.generate()
    try:
        return load_signing_key(path)
    except ConfigError as exc:
        raise UsageError(f"{exc}; move it aside and run provision again to make a new one") from None


def _ask(flag: Flag, interactive: bool) -> str:
    if not interactive:
        raise UsageError(f"{flag.flag} is required ({flag.config_key})")
    answer = input(f"{flag.prompt}: ").strip()
    if not answer:
        raise UsageError(f"{flag.flag} is required ({flag.config_key})")
    return answer


def _existing_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The cart's TLS key is kept across re-provisioning (its certificate stays valid); a broken one is named."""
    try:
        return load_key(path.read_bytes())
    except OSError as exc:
        raise UsageError(f"{path} cannot be read: {exc.strerror}") from None
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise UsageError(
            f"{path} is not a usable EC private key (PEM); move it aside and run provision again "
            "to make a new key, then have the new CSR signed"
        ) from None


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
    tables: dict[str, dict[str, Value]] = {section: {} for section in SECTIONS}
    tables["appliance"]["badge_secret_file"] = str(out / SECRET_NAME)
    for flag in (f for f in FLAGS if f.section in SECTIONS):
        value = getattr(args, flag.dest)
        if value is not None:
            tables[flag.section][flag.key] = _toml_value(value)
    tables["mqtt"]["cert_file"] = str(out / CERT_NAME)
    tables["mqtt"]["key_file"] = str(out / KEY_NAME)
    tables["audit"].setdefault("key_file", str(out / AUDIT_KEY_NAME))
    return tables


def _toml_value(value: object) -> Value:
    """Paths are written absolute, so the config works whatever directory `handoff run` starts in."""
    if isinstance(value, Path):
        return str(value.resolve())
    if isinstance(value, str | bool | int | float):
        return value
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _toml(args: argparse.Namespace, config_path: Path) -> str:
    return render_toml(_tables(args, config_path.parent), {"readers": args.readers})


def _config(args: argparse.Namespace, config_path: Path) -> Config:
    """Validate the TOML exactly as `handoff run` will read it, naming the flag at fault."""
    raw = tomllib.loads(_toml(args, config_path))
    try:
        return parse_config(raw, config_path)
    except ConfigError as exc:
        flag = _flag_for(exc.key, args.readers)
        raise UsageError(f"{flag}: {exc.problem}" if flag else f"{exc.key} {exc.problem}") from None


def _flag_for(key: str | None, readers: Sequence[Mapping[str, Value]]) -> str | None:
    """The flag that set a dotted config key, e.g. `readers[1].trust_anchors` -> `--pcsc-trust-anchors`."""
    if key is None:
        return None
    found = re.fullmatch(r"readers\[(\d+)\]\.(\w+)", key)
    if found:
        index, name = int(found[1]), found[2]
        kind = readers[index]["kind"] if index < len(readers) else None
        matches = [f for f in FLAGS if f.section == kind and f.key == name]
    else:
        section, _, name = key.partition(".")
        matches = [f for f in FLAGS if f.section == section and f.key == name]
    return matches[0].flag if matches else None
