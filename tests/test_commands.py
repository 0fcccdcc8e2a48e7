"""The command channel: every refusal path, signatures, expiry with an injected clock, replay memory."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from handoff import db
from handoff.audit.keys import load_public_keys, private_pem, public_pem
from handoff.commands.handler import CommandHandler
from handoff.commands.signing import sign_command
from handoff.core.inputs import Activity, ForceLogoff, SetMaintenance
from handoff.directory import Badge, Directory
from handoff.errors import ConfigError
from handoff.timefmt import rfc3339
from tests.kit.cli import CliRunner
from tests.kit.commands import DEVICE, NOW, REF, Channel
from tests.kit.config import Layout


@pytest.fixture
def channel(tmp_path: Path) -> Channel:
    """A lab bench: no command key, `allow_unsigned_commands = true`."""
    return Channel(tmp_path, allow_unsigned=True)


def test_each_command_becomes_its_input(channel: Channel) -> None:
    assert channel.send("force_logoff")[0] == [ForceLogoff()]
    assert channel.send("activity")[0] == [Activity()]
    inputs, result = channel.send("maintenance", {"on": True})
    assert inputs == [SetMaintenance(True)] and result["ok"] and result["command"] == "maintenance"


def test_directory_replaces_atomically_and_refuses_older(channel: Channel) -> None:
    badge = {"badge_ref": REF, "staff_id": "ana", "name": "Ana", "role": "RN", "revoked": False}
    _, result = channel.send("directory", {"version": 5, "badges": [badge]})
    assert result["ok"], result
    directory = Directory(channel.conn)
    assert directory.version() == 5 and directory.lookup(REF) == Badge(REF, "ana", "Ana", "RN")
    _, stale = channel.send("directory", {"version": 5, "badges": []})
    assert stale["error"] == "stale_directory" and directory.lookup(REF) is not None
    _, bad = channel.send("directory", {"version": 6, "badges": [badge, {**badge, "staff_id": ""}]})
    assert bad["error"] == "invalid" and "badges[1]" in bad["message"] and directory.version() == 5


@pytest.mark.parametrize(
    ("name", "raw", "error"),
    [
        ("reboot", b"{}", "unknown_command"),
        ("activity", b"not json", "malformed"),
        ("activity", b"[1]", "malformed"),
        ("activity", b'{"id": "nope"}', "invalid"),
        ("activity", b'{"id": "0190f1c2-7d3e-7a4b-8c5d-6e7f80912345"}', "invalid"),
        ("activity", b"{" + b" " * 5000 + b"}", "oversized"),
    ],
)
def test_malformed_commands_are_answered_and_change_nothing(
    channel: Channel, name: str, raw: bytes, error: str
) -> None:
    assert channel.deliver(name, raw)[0] == []
    assert channel.results[-1]["error"] == error and channel.results[-1]["ok"] is False


def test_expiry_and_clock_skew(channel: Channel) -> None:
    assert channel.send("activity", issued_at=rfc3339(NOW - 301))[1]["error"] == "expired"
    assert channel.send("activity", issued_at=rfc3339(NOW + 120))[1]["error"] == "expired"
    assert channel.send("activity", expires_at=rfc3339(NOW - 1))[1]["error"] == "expired"
    assert channel.send("activity", issued_at="yesterday")[1]["error"] == "invalid"
    assert channel.send("maintenance", {"on": "yes"})[1]["error"] == "invalid"


def test_replay_is_refused_even_after_reopening(tmp_path: Path) -> None:
    channel = Channel(tmp_path, allow_unsigned=True)
    payload = json.dumps({"id": str(uuid.uuid4()), "issued_at": rfc3339(NOW)}).encode()
    assert channel.deliver("force_logoff", payload)[0] == [ForceLogoff()]
    reopened = Channel(tmp_path, allow_unsigned=True)
    assert reopened.deliver("force_logoff", payload, NOW + 10)[0] == []
    assert reopened.results[-1]["error"] == "replayed"


def test_signed_commands(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    channel = Channel(tmp_path, key)
    assert channel.send("force_logoff")[0] == [ForceLogoff()]
    assert channel.send("force_logoff", sign=False)[1]["error"] == "unsigned"
    other = Ed25519PrivateKey.generate()
    forged = sign_command(other, DEVICE, "force_logoff", {"id": str(uuid.uuid4()), "issued_at": rfc3339(NOW)})
    assert channel.deliver("force_logoff", json.dumps(forged).encode())[0] == []
    assert channel.results[-1]["error"] == "bad_signature"
    for device, name in (("WOW-OTHER", "force_logoff"), (DEVICE, "activity")):
        signed = sign_command(key, device, name, {"id": str(uuid.uuid4()), "issued_at": rfc3339(NOW)})
        assert channel.deliver("force_logoff", json.dumps(signed).encode())[0] == []
        assert channel.results[-1]["error"] == "bad_signature"
    tampered = sign_command(
        key, DEVICE, "maintenance", {"id": str(uuid.uuid4()), "issued_at": rfc3339(NOW), "on": False}
    )
    tampered["on"] = True
    assert channel.deliver("maintenance", json.dumps(tampered).encode())[0] == []
    assert channel.results[-1]["error"] == "bad_signature"


@pytest.mark.parametrize("name", ["force_logoff", "maintenance", "activity", "directory"])
def test_unsigned_commands_are_refused_unless_allowed(tmp_path: Path, name: str) -> None:
    """No command key and no `allow_unsigned_commands`: nothing unsigned is obeyed, nothing changes."""
    fields = {"on": True} if name == "maintenance" else {"version": 9, "badges": []} if name == "directory" else {}
    badge = Badge(REF, "ana", "Ana", "RN")
    channel = Channel(tmp_path)
    Directory(channel.conn).replace([badge], 3)
    inputs, result = channel.send(name, fields)
    assert inputs == [] and result["error"] == "unsigned" and "appliance.command_key_file" in result["message"]
    assert Directory(channel.conn).version() == 3 and Directory(channel.conn).lookup(REF) == badge
    assert channel.conn.execute("SELECT count(*) FROM seen_commands").fetchone()[0] == 0


def test_allow_unsigned_with_a_key_still_checks_signatures(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    channel = Channel(tmp_path, key, allow_unsigned=True)
    assert channel.send("activity", sign=False)[0] == [Activity()]
    forged = sign_command(
        Ed25519PrivateKey.generate(), DEVICE, "activity", {"id": str(uuid.uuid4()), "issued_at": rfc3339(NOW)}
    )
    assert channel.deliver("activity", json.dumps(forged).encode())[0] == []
    assert channel.results[-1]["error"] == "bad_signature"


def test_directory_version_is_capped(channel: Channel) -> None:
    """A huge version would make every later push stale; one past 2^53 - 1 is refused."""
    _, huge = channel.send("directory", {"version": 10**30, "badges": []})
    assert huge["error"] == "invalid" and "2^53 - 1" in huge["message"]
    assert channel.send("directory", {"version": 2**53, "badges": []})[1]["error"] == "invalid"
    assert Directory(channel.conn).version() == 0
    assert channel.send("directory", {"version": 6, "badges": []})[1]["ok"]
    assert channel.send("directory", {"version": 2**53 - 1, "badges": []})[1]["ok"]


def test_command_key_file_holds_one_or_more_keys(tmp_path: Path) -> None:
    """During a rotation the file holds the old and the new key; text around the blocks is allowed."""
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    path = tmp_path / "cmd.pub"
    path.write_bytes(b"# retiring\n" + public_pem(old) + b"# new, from 2026-12\n" + public_pem(new))
    loaded = load_public_keys(path, "appliance.command_key_file")
    assert [k.public_bytes_raw() for k in loaded] == [
        old.public_key().public_bytes_raw(),
        new.public_key().public_bytes_raw(),
    ]


def _ec_public_pem() -> bytes:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )


@pytest.mark.parametrize(
    ("extra", "complaint"),
    [
        (_ec_public_pem(), "holds a key that is not Ed25519"),
        (private_pem(Ed25519PrivateKey.generate()), "holds a PEM block that is not a public key (PRIVATE KEY)"),
        (
            b"-----BEGIN PUBLIC KEY-----\nbm9wZQ==\n-----END PUBLIC KEY-----\n",
            "holds a PEM public key block that does not parse",
        ),
    ],
    ids=["P-256 key", "private key", "broken block"],
)
def test_a_command_key_file_with_a_bad_block_among_good_ones_is_refused(
    appliance: Layout, cli: CliRunner, extra: bytes, complaint: str
) -> None:
    """Refused, not skipped: the good key would otherwise hide that the intended one is missing."""
    path = appliance.root / "commands.pem"
    path.write_bytes(public_pem(Ed25519PrivateKey.generate()) + extra)
    appliance.configure(appliance={"command_key_file": str(path)})
    with pytest.raises(ConfigError) as refused:
        load_public_keys(path, "appliance.command_key_file")
    assert str(refused.value) == f"appliance.command_key_file: {path} {complaint}"
    result = cli("run", "-c", appliance.config)
    assert result.returncode == 2 and f"appliance.command_key_file: {path}" in result.stderr, result.stderr
    assert complaint in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_command_key_file_without_a_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cmd.pub"
    path.write_text("garbage")
    with pytest.raises(ConfigError, match=r"appliance\.command_key_file: .* holds no PEM public key"):
        load_public_keys(path, "appliance.command_key_file")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_public_keys(tmp_path / "absent.pub", "appliance.command_key_file")


def test_signature_covers_rfc8785_canonical_json(tmp_path: Path) -> None:
    """A signer in another language signs JCS bytes: keys in UTF-16 order, 1.0 written as 1.

    The expected bytes are written out by hand from RFC 8785 sections 3.2.2.3 and 3.2.3, not
    made by the code under test: a JSON encoder with sorted keys puts U+E000 before U+1F600
    (code points) and keeps `1.0`, and its signature would not verify.
    """
    key = Ed25519PrivateKey.generate()
    handler_results: list[dict[str, Any]] = []
    conn = db.connect(tmp_path)
    handler = CommandHandler(conn, DEVICE, [key.public_key()], handler_results.append)
    command_id = str(uuid.uuid4())
    issued = rfc3339(NOW - 1)
    canonical = f'{{"id":"{command_id}","issued_at":"{issued}","on":true,"x":{{"\U0001f600":1,"\ue000":2}}}}'
    message = f"handoff-cmd-v1\n{DEVICE}\nmaintenance\n{canonical}".encode()
    signature = base64.b64encode(key.sign(message)).decode()
    wire = f'{{"x":{{"\ue000":2.0,"\U0001f600":1.0}},"on":true,"issued_at":"{issued}","id":"{command_id}",'
    wire += f'"signature":"{signature}"}}'
    order = handler.handle("maintenance", wire.encode(), NOW)
    assert order is not None and order.input == SetMaintenance(True), handler_results


@pytest.mark.parametrize("name", ["Ana\x1b[31m", "Ana\nDiaz", "Ana\x00", "Ana\u202e"])
def test_directory_names_with_control_characters_are_refused(channel: Channel, name: str) -> None:
    badge = {"badge_ref": REF, "staff_id": "ana", "name": name, "role": "RN", "revoked": False}
    _, result = channel.send("directory", {"version": 2, "badges": [badge]})
    assert result["error"] == "invalid" and "printable" in result["message"]
    assert Directory(channel.conn).version() == 0


@pytest.mark.parametrize("staff_id", ["-rf", "--config=/tmp/evil.conf", "{session_id}", "ana diaz", "a" * 65, ""])
def test_directory_staff_ids_outside_the_rule_are_refused(channel: Channel, staff_id: str) -> None:
    """A staff id reaches the logoff program's argv on the workstation: none that reads as an option."""
    good = {"badge_ref": REF, "staff_id": "ana.diaz@x_1-2", "name": "Ana", "role": "RN", "revoked": False}
    assert channel.send("directory", {"version": 2, "badges": [good]})[1]["ok"]
    bad = {**good, "staff_id": staff_id}
    _, result = channel.send("directory", {"version": 3, "badges": [bad]})
    assert result["error"] == "invalid" and "A-Z a-z 0-9" in result["message"]
    assert Directory(channel.conn).version() == 2 and Directory(channel.conn).lookup(REF) is not None
