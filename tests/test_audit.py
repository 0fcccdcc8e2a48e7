"""The tamper-evident trail: made by the real store, checked by `handoff audit verify`.

Each mutation an attacker (or an accident) could make to a copy of a valid trail must be
named with the right reason at the right `seq`; the untouched trail must verify.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from handoff import compact_json, db
from handoff.audit.chain import NotCanonical, canonical, digest, digest_of_signed, genesis, link, sealed
from handoff.audit.checkpoint import CheckpointPolicy, make_checkpoint
from handoff.audit.keys import private_pem, public_pem
from handoff.audit.signature import event_signature, event_signed_bytes, signature
from handoff.audit.verify import Finding, Summary, verify_lines
from handoff.store import Store
from tests.kit.appliance import ANA, BO, Running
from tests.kit.broker import Broker
from tests.kit.cli import CliRunner, handoff_env
from tests.kit.config import PREFIX, Layout
from tests.kit.outbox import CONTEXT, SOURCE, checkout, in_use

KEY = Ed25519PrivateKey.generate()


def make_trail(data: Path, events: int, every: int = 5, *, stop: bool = True) -> list[dict[str, object]]:
    """`events` real events through the store, as published (signed) with their checkpoints:
    every `every` events, and one at a clean `stop`."""
    store = Store(db.connect(data), checkpoints=CheckpointPolicy(KEY, every, 3600.0))
    for index in range(events):
        store.commit(in_use(f"s{index}"), [checkout(f"s{index}")], CONTEXT)
    if stop:
        store.checkpoint(CONTEXT, force=True)
    return trail_of(store)


def trail_of(store: Store) -> list[dict[str, object]]:
    lines = [json.loads(store.outgoing(event)) for event, _ in store.all_events()]
    return lines + [json.loads(payload) for _, payload, _, _ in store.all_checkpoints()]


def verdict(records: list[dict[str, object]], *keys: Ed25519PrivateKey) -> Summary | Finding:
    """Verified under `keys`, the appliance's KEY by default."""
    return verify_lines(iter(json.dumps(r) for r in records), [key.public_key() for key in keys or (KEY,)])


def events_of(records: list[dict[str, object]]) -> list[dict[str, object]]:
    return [r for r in records if r["type"] != "org.handoff.checkpoint"]


def at_seq(records: list[dict[str, object]], seq: int) -> dict[str, object]:
    return next(r for r in events_of(records) if r["data"]["seq"] == seq)  # type: ignore[index]


def test_every_event_links_to_the_one_before_from_the_sources_genesis(tmp_path: Path) -> None:
    trail = events_of(make_trail(tmp_path, 3))
    previous = genesis(SOURCE)
    for event in trail:
        assert event["data"]["chain"] == link(previous, digest(event))  # type: ignore[index]
        previous = event["data"]["chain"]  # type: ignore[index]


def test_an_untouched_trail_verifies_and_counts_what_is_not_yet_signed(tmp_path: Path) -> None:
    result = verdict(make_trail(tmp_path, 12, every=5, stop=False))
    assert isinstance(result, Summary), result
    assert (result.events, result.checkpoints, result.unsigned) == (12, 2, 2)
    signed = verdict(make_trail(tmp_path / "stopped", 12, every=5))
    assert isinstance(signed, Summary) and (signed.checkpoints, signed.unsigned) == (3, 0)


def test_duplicates_and_any_order_are_fine(tmp_path: Path) -> None:
    trail = make_trail(tmp_path, 10)
    assert isinstance(verdict(list(reversed(trail)) + trail[:4]), Summary)


def _change_a_byte(trail: list[dict[str, object]]) -> None:
    at_seq(trail, 4)["data"]["staff_id"] = "s9"  # type: ignore[index]


def _delete_one(trail: list[dict[str, object]]) -> None:
    trail.remove(at_seq(trail, 4))


def _delete_after_checkpoint(trail: list[dict[str, object]]) -> None:
    for seq in (9, 10):
        trail.remove(at_seq(trail, seq))


def _a_number_no_appliance_writes(trail: list[dict[str, object]]) -> None:
    at_seq(trail, 4)["data"]["dose"] = 1e400  # type: ignore[index]


def _a_lone_surrogate(trail: list[dict[str, object]]) -> None:
    at_seq(trail, 4)["data"]["staff_id"] = "\ud800"  # type: ignore[index]


def _swap_two(trail: list[dict[str, object]]) -> None:
    first, second = at_seq(trail, 4), at_seq(trail, 5)
    first["data"]["seq"], second["data"]["seq"] = 5, 4  # type: ignore[index]


def _insert_forged(trail: list[dict[str, object]]) -> None:
    forged = json.loads(json.dumps(at_seq(trail, 4)))
    forged["id"] = "01900000-0000-7000-8000-000000000000"
    forged["data"]["staff_id"] = "mallory"
    trail.append(forged)


def _checkpoint_seq_changed(trail: list[dict[str, object]]) -> None:
    checkpoint = next(r for r in trail if r["type"] == "org.handoff.checkpoint")
    checkpoint["data"]["seq"] = 4  # type: ignore[index]


def _signed_by_another_key(trail: list[dict[str, object]]) -> None:
    checkpoint = next(r for r in trail if r["type"] == "org.handoff.checkpoint")
    data = checkpoint["data"]
    forged = make_checkpoint(Ed25519PrivateKey.generate(), SOURCE, "WOW-3N-07", data["seq"], data["chain"], 0.0)  # type: ignore[index]
    trail[trail.index(checkpoint)] = forged


OTHER = Ed25519PrivateKey.generate()
"""Another appliance's key: trusted too when an auditor passes both with --key."""


def _resign(record: dict[str, object], key: Ed25519PrivateKey) -> None:
    data = record["data"]
    if record["type"] == "org.handoff.checkpoint":
        data["signature"] = signature(key, data)  # type: ignore[index,arg-type]
    else:
        data["signature"] = event_signature(key, record)  # type: ignore[index]


def _tampered_event_signature(trail: list[dict[str, object]]) -> None:
    event = at_seq(trail, 6)
    event["data"]["signature"] = at_seq(trail, 7)["data"]["signature"]  # type: ignore[index]


def _an_unsigned_event(trail: list[dict[str, object]]) -> None:
    del at_seq(trail, 3)["data"]["signature"]  # type: ignore[attr-defined]


def _whole_trail_signed_by_another_key(trail: list[dict[str, object]]) -> None:
    for record in trail:
        _resign(record, OTHER)


@pytest.mark.parametrize(
    ("mutate", "reason", "seq"),
    [
        (_tampered_event_signature, "bad_signature", 6),
        (_an_unsigned_event, "bad_signature", 3),
        (_whole_trail_signed_by_another_key, "bad_signature", 1),
        (_change_a_byte, "altered", 4),
        (_delete_one, "missing", 4),
        (_delete_after_checkpoint, "missing", 9),
        (_a_number_no_appliance_writes, "altered", 4),
        (_a_lone_surrogate, "altered", 4),
        (_swap_two, "reordered", 4),
        (_insert_forged, "inserted", 4),
        (_checkpoint_seq_changed, "bad_signature", 4),
        (_signed_by_another_key, "bad_signature", 5),
    ],
)
def test_each_mutation_is_named_at_its_seq(tmp_path: Path, mutate: object, reason: str, seq: int) -> None:
    trail = make_trail(tmp_path, 10, every=5)
    mutate(trail)  # type: ignore[operator]
    result = verdict(trail)
    assert isinstance(result, Finding), result
    assert (result.reason, result.seq) == (reason, seq), result.describe()


@pytest.mark.parametrize(
    ("other_from", "seq"),
    [(6, 6), (11, 5), (1, 5)],
    ids=["later events by the other key", "a checkpoint by the other key", "events by one key, checkpoints the other"],
)
def test_with_several_keys_a_sources_trail_must_verify_under_one(tmp_path: Path, other_from: int, seq: int) -> None:
    """Both appliances' keys are trusted, yet a trail mixing them was put together by someone."""
    trail = make_trail(tmp_path, 10, every=5)
    assert isinstance(verdict(trail, KEY, OTHER), Summary)
    for record in trail:
        is_checkpoint = record["type"] == "org.handoff.checkpoint"
        if (other_from == 11 and is_checkpoint and record["data"]["seq"] == 5) or (  # type: ignore[index]
            other_from <= 10 and not is_checkpoint and record["data"]["seq"] >= other_from  # type: ignore[index]
        ):
            _resign(record, OTHER)
    result = verdict(trail, KEY, OTHER)
    assert isinstance(result, Finding) and (result.reason, result.seq) == ("other_key", seq), result


def test_a_trail_wholly_signed_by_another_trusted_key_verifies_under_it(tmp_path: Path) -> None:
    trail = make_trail(tmp_path, 10, every=5)
    _whole_trail_signed_by_another_key(trail)
    assert isinstance(verdict(trail, KEY, OTHER), Summary)


def test_a_restored_old_database_that_runs_on_is_a_fork(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old_copy = tmp_path / "backup"
    store = Store(db.connect(data), checkpoints=CheckpointPolicy(KEY, 100, 3600.0))
    for index in range(5):
        store.commit(in_use(f"s{index}"), [checkout(f"s{index}")], CONTEXT)
    store.checkpoint(CONTEXT, force=True)
    shutil.copytree(data, old_copy)
    for index in range(3):
        store.commit(in_use(f"a{index}"), [checkout(f"a{index}")], CONTEXT)
    store.checkpoint(CONTEXT, force=True)
    first_life = trail_of(store)
    restored = Store(db.connect(old_copy), checkpoints=CheckpointPolicy(KEY, 100, 3600.0))
    for index in range(3):
        restored.commit(in_use(f"b{index}"), [checkout(f"b{index}")], CONTEXT)
    result = verdict(first_life + trail_of(restored))
    assert isinstance(result, Finding) and (result.reason, result.seq) == ("fork", 6), result


def test_a_trail_without_a_valid_checkpoint_is_not_intact(tmp_path: Path) -> None:
    trail = events_of(make_trail(tmp_path, 3))
    result = verdict(trail)
    assert isinstance(result, Finding) and result.reason == "no_checkpoint"


MUTATIONS = st.sampled_from(["field", "delete", "swap", "duplicate_seq", "reseq", "drop_chain"])


@settings(max_examples=60, deadline=None)
@given(kind=MUTATIONS, target=st.integers(min_value=1, max_value=11), value=st.text(min_size=1, max_size=8))
def test_any_single_mutation_of_a_signed_trail_is_caught(
    tmp_path_factory: pytest.TempPathFactory, kind: str, target: int, value: str
) -> None:
    trail = make_trail(tmp_path_factory.mktemp("trail"), 12, every=12)
    event = at_seq(trail, target)
    data = event["data"]
    if kind == "field":
        if data["staff_id"] == value:  # type: ignore[index]
            value += "x"
        data["staff_id"] = value  # type: ignore[index]
    elif kind == "delete":
        trail.remove(event)
    elif kind == "swap":
        other = at_seq(trail, target + 1)
        data["seq"], other["data"]["seq"] = target + 1, target  # type: ignore[index]
    elif kind == "duplicate_seq":
        copy = json.loads(json.dumps(event))
        copy["id"] = copy["id"][:-4] + "ffff"
        copy["data"]["reason"] = value
        trail.append(copy)
    elif kind == "reseq":
        data["seq"] = target + 100  # type: ignore[index]
    else:
        del data["chain"]  # type: ignore[attr-defined]
    assert isinstance(verdict(trail), Finding)


def test_verify_cli_exit_codes(tmp_path: Path, cli: CliRunner) -> None:
    trail = make_trail(tmp_path / "data", 7, every=5, stop=False)
    good = tmp_path / "trail.jsonl"
    good.write_text("".join(compact_json.dumps(r) + "\n" for r in trail))
    key = tmp_path / "audit.pub"
    key.write_bytes(public_pem(KEY))
    intact = cli("audit", "verify", good, "--key", key)
    assert intact.returncode == 0 and "2 trailing event(s)" in intact.stdout, intact.stdout + intact.stderr
    _delete_one(trail)
    broken = tmp_path / "broken.jsonl"
    broken.write_text("".join(compact_json.dumps(r) + "\n" for r in trail))
    result = cli("audit", "verify", broken, "--key", key)
    assert result.returncode == 1 and "seq 4" in result.stdout and "missing" in result.stdout
    junk = tmp_path / "junk.jsonl"
    junk.write_text('{"a": 1}\nnot json\n')
    refused = cli("audit", "verify", junk, "--key", key)
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1 and "Traceback" not in refused.stderr
    beyond = tmp_path / "beyond.jsonl"
    beyond.write_text(good.read_text().replace('"seq":4,', '"seq":4,"dose":1e400,', 1))
    named = cli("audit", "verify", beyond, "--key", key)
    assert named.returncode == 1 and "seq 4" in named.stdout and "altered" in named.stdout, named.stdout + named.stderr
    assert "Traceback" not in named.stderr
    missing = cli("audit", "verify", tmp_path / "nope.jsonl")
    assert missing.returncode == 2 and "cannot be read" in missing.stderr


def test_an_export_whose_oldest_events_were_purged_is_anchored_by_the_checkpoint_below_it(tmp_path: Path) -> None:
    trail = make_trail(tmp_path, 10, every=5)
    purged = [r for r in trail if r["type"] == "org.handoff.checkpoint" or r["data"]["seq"] > 5]  # type: ignore[index]
    result = verdict(purged)
    assert isinstance(result, Summary) and result.sources == {SOURCE: (6, 10)}, result
    cut_elsewhere = [r for r in purged if r["type"] == "org.handoff.checkpoint" or r["data"]["seq"] > 6]  # type: ignore[index]
    result = verdict(cut_elsewhere)
    assert isinstance(result, Finding) and (result.reason, result.seq) == ("missing", 1), result


def test_a_real_appliance_trail_captured_from_the_broker_verifies(
    appliance: Layout, cli: CliRunner, tmp_path: Path
) -> None:
    """Taps through a real `handoff run` and mosquitto; the capture and the outbox export both verify."""
    key = tmp_path / "audit.key"
    key.write_bytes(private_pem(KEY))
    key.chmod(0o600)
    public = tmp_path / "audit.pub"
    public.write_bytes(public_pem(KEY))
    with Broker(tmp_path / "broker") as broker:
        app = Running(
            appliance, broker, cli, {"retap_guard_s": 0.0}, audit={"key_file": str(key), "checkpoint_every": 3}
        )
        try:
            for uid in (ANA, BO, BO, ANA):
                app.tap(uid)
            app.event_types(6)
            assert app.stop()[0] == 0
            app.events.wait_for(lambda m: m.topic == f"{PREFIX}/checkpoint" and m.json()["data"]["seq"] == 6)
        finally:
            if app.process is not None:
                app.stop()
            app.events.close()
    captured = tmp_path / "captured.jsonl"
    wanted = [m for m in app.events.messages if "/events/" in m.topic or m.topic.endswith("/checkpoint")]
    captured.write_bytes(b"".join(m.payload + b"\n" for m in wanted))
    result = cli("audit", "verify", captured, "--key", public)
    assert result.returncode == 0 and "6 events" in result.stdout and " 0 trailing" in result.stdout, result.stdout
    stored = [json.loads(event.payload) for event, _ in Store(db.connect(appliance.data_dir)).all_events()]
    assert len(stored) == 6 and all("signature" in event["data"] for event in stored), "signed after each cue"
    export = cli("outbox", "export", "-c", appliance.config)
    exported = tmp_path / "export.jsonl"
    exported.write_text(export.stdout)
    assert cli("audit", "verify", exported, "--key", public).returncode == 0


KILLED_WRITER = """
import sys
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_private_key

from handoff import db
from handoff.audit.checkpoint import CheckpointPolicy
from handoff.store import Store
from tests.kit.outbox import CONTEXT, checkout, in_use

key = load_pem_private_key(Path(sys.argv[2]).read_bytes(), password=None)
store = Store(db.connect(Path(sys.argv[1])), checkpoints=CheckpointPolicy(key, 7, 3600.0))
for index in range(int(sys.argv[3])):
    store.commit(in_use(f"s{index}"), [checkout(f"s{index}") for _ in range(1 + index % 3)], CONTEXT)
    if index == 0:
        print("committing", flush=True)
store.checkpoint(CONTEXT, force=True)
"""


def test_kill_nine_during_commits_leaves_the_chain_whole(tmp_path: Path, rng: random.Random) -> None:
    data, key = tmp_path / "data", tmp_path / "audit.key"
    key.write_bytes(private_pem(KEY))
    key.chmod(0o600)
    command = [sys.executable, "-c", KILLED_WRITER, str(data), str(key)]
    for _ in range(6):
        child = subprocess.Popen([*command, "400"], env=handoff_env(), stdout=subprocess.PIPE)
        assert child.stdout is not None and child.stdout.readline() == b"committing\n"
        time.sleep(rng.uniform(0.05, 0.5))  # a random point in the commits, which the child has begun
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    subprocess.run([*command, "1"], env=handoff_env(), check=True)
    trail = trail_of(Store(db.connect(data), checkpoints=CheckpointPolicy(KEY, 100, 3600.0)))
    result = verdict(trail)
    assert isinstance(result, Summary) and result.unsigned == 0, result
    assert result.events > 20, "the children were killed before committing much"


WITH_SURROGATE = st.tuples(st.text(), st.characters(categories=["Cs"]), st.text()).map("".join)
"""Text with a lone surrogate, which RFC 8785 refuses."""
KEYS = st.text(max_size=6) | WITH_SURROGATE | st.sampled_from(["\ue000", "\U0001f600", "\uffff", "\U00010000", "a"])
"""Mixed with keys that sort differently by UTF-16 code units than by code points."""
REFUSED = (rfc8785.CanonicalizationError, UnicodeEncodeError)
"""How the library refuses: a lone surrogate in a key fails its UTF-16 sort (rfc8785 0.1.4)."""
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([2**53 - 1, -(2**53) + 1, 2**53, -(2**53), 0])
    | st.floats()
    | st.text()
    | WITH_SURROGATE,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(value=JSON_VALUES)
def test_the_fast_canonical_json_is_byte_for_byte_rfc8785(value: object) -> None:
    """The encoder's shortcut may only be taken where it writes what the RFC 8785 library
    writes, and must refuse what the library refuses."""
    try:
        reference = rfc8785.dumps(value)
    except REFUSED:
        with pytest.raises(NotCanonical):
            canonical(value)
        return
    assert canonical(value) == reference


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.text()
    | st.sampled_from(['"chain":"' + "0" * 64 + '",', ',"chain":"' + "0" * 64 + '"', "chain"])
)
EVENTS = st.fixed_dictionaries(
    {"id": st.text(), "source": st.text(), "type": st.text()},
    optional={"comexample": st.text(), "zz": SCALARS},
).flatmap(
    lambda top: st.dictionaries(st.text(max_size=12).filter(lambda key: key != "chain"), SCALARS, max_size=8).map(
        lambda data: {**top, "data": data}
    )
)


@settings(max_examples=300, deadline=None)
@given(event=EVENTS, previous=st.binary(min_size=32, max_size=32))
def test_sealing_in_one_encoding_gives_the_documented_link_and_canonical_bytes(event: dict, previous: bytes) -> None:
    """The single-encoding shortcut must cut out exactly the link, wherever `chain` sorts among
    the data's keys and whatever the values hold (even text that looks like the placeholder)."""
    try:
        rfc8785.dumps(event)
    except rfc8785.CanonicalizationError:
        return
    expected = link(previous.hex(), digest(event))
    payload, chain = sealed(json.loads(json.dumps(event)), previous.hex())
    assert chain == expected
    assert payload == canonical({**event, "data": {**event["data"], "chain": expected}})


@settings(max_examples=300, deadline=None)
@given(event=EVENTS, chain=st.binary(min_size=32, max_size=32).map(bytes.hex) | SCALARS, elsewhere=st.booleans())
def test_the_digest_cut_from_the_signed_bytes_is_digest_or_none(event: dict, chain: object, elsewhere: bool) -> None:
    """The ledger encodes an event once, for its signature and its link: the cut must give
    `digest`'s answer or none at all, whatever the event holds (another `chain` key, a link that
    is not hex, text that looks like the link)."""
    event["data"]["chain"] = chain
    if elsewhere:
        event["zz"] = {"chain": chain}
    try:
        signed = event_signed_bytes(event)
    except NotCanonical:
        return
    cut = digest_of_signed(signed, chain)
    assert cut is None or cut == digest(event)
    if isinstance(chain, str) and chain.isascii() and chain.isalnum() and not elsewhere:
        assert cut == digest(event), "an appliance's event takes the shortcut"


def test_verify_cli_names_a_mixed_trail_and_a_tampered_signature(tmp_path: Path, cli: CliRunner) -> None:
    trail = make_trail(tmp_path / "data", 10, every=5)
    keys = []
    for name, key in (("a.pub", KEY), ("b.pub", OTHER)):
        (tmp_path / name).write_bytes(public_pem(key))
        keys += ["--key", tmp_path / name]
    _resign(next(r for r in trail if r["type"] == "org.handoff.checkpoint" and r["data"]["seq"] == 10), OTHER)  # type: ignore[index]
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("".join(compact_json.dumps(r) + "\n" for r in trail))
    result = cli("audit", "verify", mixed, *keys)
    assert result.returncode == 1 and "seq 10" in result.stdout and "other_key" in result.stdout, result.stdout
    trail = make_trail(tmp_path / "again", 10, every=5)
    _tampered_event_signature(trail)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("".join(compact_json.dumps(r) + "\n" for r in trail))
    result = cli("audit", "verify", tampered, *keys)
    assert result.returncode == 1 and "seq 6" in result.stdout and "bad_signature" in result.stdout, result.stdout
