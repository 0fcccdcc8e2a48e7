"""The appliance signs what it publishes: events as they go out, state, status, its last will and
command results, each under its audit key, and a forger's change to any field is caught."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from handoff import db
from handoff.audit.chain import canonical
from handoff.audit.checkpoint import CheckpointPolicy
from handoff.audit.keys import private_pem
from handoff.audit.signature import (
    event_signature,
    event_signature_ok,
    event_signed_bytes,
    public_key_b64,
    signature,
    signature_ok,
    signed_bytes,
)
from handoff.ledger.trust import Enrolled, Judged, believed
from handoff.mqtt.publisher import PublisherSettings
from handoff.store import Store
from tests.kit.broker import Broker
from tests.kit.collector import Collector
from tests.kit.config import PREFIX
from tests.kit.outbox import CONTEXT, SOURCE, checkout, in_use, mqtt_config, publisher

KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()
ENROLLED = Enrolled(KEY.public_key().public_bytes_raw(), ())
"""KEY as the ledger holds it: it verifies through libsodium, the appliance signs through
`cryptography`, and the two must agree."""
FAST = PublisherSettings(backoff_base_s=0.05, backoff_cap_s=0.3)


def signing_store(data: Path, key: Ed25519PrivateKey = KEY) -> Store:
    return Store(db.connect(data), checkpoints=CheckpointPolicy(key, 1000, 3600.0))


def payloads(store: Store) -> list[dict[str, Any]]:
    """The events as the store hands them to the publisher."""
    return [json.loads(store.outgoing(event)) for event, _ in store.all_events()]


def test_every_event_goes_out_signed_over_the_whole_event(tmp_path: Path) -> None:
    store = signing_store(tmp_path / "data")
    stored = store.commit(in_use("ana"), [checkout("ana"), checkout("bo")], CONTEXT)
    for row in stored:
        assert "signature" not in json.loads(row.payload)["data"], "the commit does not wait for Ed25519"
        outgoing = store.outgoing(row)
        event = json.loads(outgoing)
        assert event_signature_ok(event, [KEY.public_key()])
        assert not event_signature_ok(event, [OTHER.public_key()])
        assert outgoing == canonical(event), "published as the canonical bytes, signature included"
        assert store.outgoing(row) == outgoing, "a resend carries the same bytes"


def test_the_rows_a_commit_stored_are_signed_after_it_into_the_bytes_the_publisher_would_send(
    tmp_path: Path,
) -> None:
    store = signing_store(tmp_path / "data")
    stored = store.commit(in_use("ana"), [checkout("ana"), checkout("bo")], CONTEXT)
    would_send = [store.outgoing(row) for row in stored]
    store.sign(stored)
    rows = [event for event, _ in store.all_events()]
    assert [row.payload for row in rows] == would_send, "the row now holds the published bytes"
    assert [store.outgoing(row) for row in rows] == would_send, "and goes out as it is, not signed twice"
    assert all(event_signature_ok(json.loads(row.payload), [KEY.public_key()]) for row in rows)


def test_signing_after_a_rewind_renumbered_the_rows_leaves_them_to_the_publisher(tmp_path: Path) -> None:
    """The publisher's thread may renumber unsent rows between a commit and its signing: the
    signature made for the old seq must not land on them."""
    store = signing_store(tmp_path / "data")
    stored = store.commit(in_use("ana"), [checkout("ana")], CONTEXT)
    assert store.rebase_above(40, None, None) is not None
    store.sign(stored)
    (row,) = [event for event, _ in store.all_events()]
    assert row.seq == 41 and "signature" not in json.loads(row.payload)["data"]
    assert event_signature_ok(json.loads(store.outgoing(row)), [KEY.public_key()])


def test_without_audit_nothing_is_signed(tmp_path: Path) -> None:
    store = Store(db.connect(tmp_path / "data"))
    store.commit(in_use("ana"), [checkout("ana")], CONTEXT)
    assert all("signature" not in event["data"] for event in payloads(store))


def test_renumbering_after_a_rewind_signs_again(tmp_path: Path) -> None:
    store = signing_store(tmp_path / "data")
    for name in ("ana", "bo", "cy"):
        store.commit(in_use(name), [checkout(name)], CONTEXT)
    before = payloads(store)
    rewind = store.rebase_above(40, None, None)
    assert rewind is not None and rewind.renumbered == 3
    after = payloads(store)
    assert [e["data"]["seq"] for e in after] == [41, 42, 43]
    assert all(event_signature_ok(event, [KEY.public_key()]) for event in after)
    assert [e["data"]["signature"] for e in after] != [e["data"]["signature"] for e in before]


def test_a_forger_who_renumbers_keeps_a_signature_that_no_longer_verifies(tmp_path: Path) -> None:
    store = signing_store(tmp_path / "data")
    (row,) = store.commit(in_use("ana"), [checkout("ana")], CONTEXT)
    event = json.loads(row.payload)
    event["data"]["seq"] = 99
    assert not event_signature_ok(event, [KEY.public_key()])
    self_signed = {**event, "data": {**event["data"]}}
    self_signed["data"]["signature"] = event_signature(OTHER, self_signed)
    assert not event_signature_ok(self_signed, [KEY.public_key()])


def test_state_status_command_result_and_offline_are_signed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = signing_store(data)
    with Broker(tmp_path / "broker") as broker:
        watcher = Collector(broker.port, f"{PREFIX}/#")  # subscribed before the event, which is not retained
        running = publisher(mqtt_config(broker.port), data, settings=FAST, key=KEY)
        running.start()
        store.commit(in_use("ana"), [checkout("ana")], CONTEXT)
        running.wake()
        try:
            wanted = {f"{PREFIX}/state", f"{PREFIX}/status", f"{PREFIX}/events/checkout"}
            got = watcher.wait_until(lambda got: {m.topic for m in got} >= wanted)
            running.publish_result({"command": "maintenance", "ok": True})
            got = watcher.wait_until(lambda got: any(m.topic == f"{PREFIX}/cmd_result" for m in got))
        finally:
            running.stop()
        by_topic = {m.topic: m.json() for m in got}
        for topic in ("state", "status", "cmd_result"):
            message = by_topic[f"{PREFIX}/{topic}"]
            assert signature_ok(message, [KEY.public_key()]), topic
            assert not signature_ok(message, [OTHER.public_key()]), topic
        assert by_topic[f"{PREFIX}/status"]["public_key"] == public_key_b64(KEY)
        assert event_signature_ok(by_topic[f"{PREFIX}/events/checkout"], [KEY.public_key()])
        offline = watcher.wait_until(lambda got: got[-1].json().get("status") == "offline")[-1].json()
        watcher.close()
    assert signature_ok(offline, [KEY.public_key()]) and offline["public_key"] == public_key_b64(KEY)


WILL_CHILD = """
import sys, time
from pathlib import Path
from handoff.audit.keys import load_signing_key
from tests.kit.outbox import mqtt_config, publisher
running = publisher(mqtt_config(int(sys.argv[1])), Path(sys.argv[2]), key=load_signing_key(Path(sys.argv[3])))
running.start()
time.sleep(600)
"""


def test_the_last_will_is_signed(tmp_path: Path) -> None:
    """The broker publishes the will only when the appliance vanishes: a child is killed."""
    key_file = tmp_path / "audit.key"
    key_file.write_bytes(private_pem(KEY))
    os.chmod(key_file, 0o600)
    with Broker(tmp_path / "broker") as broker:
        watcher = Collector(broker.port, f"{PREFIX}/status")
        child = subprocess.Popen(
            [sys.executable, "-c", WILL_CHILD, str(broker.port), str(tmp_path / "data"), str(key_file)]
        )
        try:
            watcher.wait_until(lambda got: any(m.json()["status"] == "online" for m in got))
            child.send_signal(signal.SIGKILL)
            got = watcher.wait_until(lambda got: got[-1].json()["status"] == "offline", timeout=90)
        finally:
            child.kill()
            child.wait()
            watcher.close()
    will = got[-1].json()
    assert signature_ok(will, [KEY.public_key()])
    assert not signature_ok({**will, "status": "online"}, [KEY.public_key()])


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def a_signed_event() -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": "0190c0de-0000-7000-8000-000000000001",
        "source": "urn:handoff:site:reader",
        "type": "org.handoff.checkout",
        "subject": "WOW-1",
        "time": "2026-12-03T12:00:00Z",
        "datacontenttype": "application/json",
        "data": {"device_id": "WOW-1", "seq": 7, "staff_id": "ana", "chain": "ab" * 32, "session_id": "s"},
    }
    event["data"]["signature"] = event_signature(KEY, event)
    return event


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_change_to_a_signed_event_fails(data: st.DataObject) -> None:
    event = a_signed_event()
    in_data = data.draw(st.booleans())
    target = event["data"] if in_data else event
    field = data.draw(st.sampled_from([*sorted(k for k in target if k != "signature"), "added"]))
    value = data.draw(JSON.filter(lambda v: v != target.get(field)))
    target[field] = value
    assert not event_signature_ok(event, [KEY.public_key()])
    assert not believed(Judged("events", "site", "WOW-1", event), ENROLLED)


def test_the_ledger_believes_what_the_appliance_signed_and_nothing_signed_by_another_key() -> None:
    event = a_signed_event()
    assert believed(Judged("events", "site", "WOW-1", event), ENROLLED)
    assert not believed(Judged("events", "site", "WOW-1", event), Enrolled(OTHER.public_key().public_bytes_raw(), ()))
    body = {"status": "online", "version": "1", "public_key": public_key_b64(KEY)}
    assert believed(Judged("status", "site", "WOW-1", {**body, "signature": signature(KEY, body)}), ENROLLED)
    assert not believed(Judged("status", "site", "WOW-1", {**body, "signature": signature(OTHER, body)}), ENROLLED)
    raw = bytearray(base64.b64decode(event["data"]["signature"]))
    raw[10] ^= 1
    event["data"]["signature"] = base64.b64encode(bytes(raw)).decode()
    assert not believed(Judged("events", "site", "WOW-1", event), ENROLLED)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["state", "status"]), st.data())
def test_any_change_to_signed_state_or_status_fails(kind: str, data: st.DataObject) -> None:
    body: dict[str, Any] = (
        {"state": "in_use", "staff_id": "ana", "session_id": "s", "since": "2026-12-03T12:00:00Z", "seq": 3}
        if kind == "state"
        else {"status": "online", "version": "1", "outbox_depth": 0, "public_key": public_key_b64(KEY)}
    )
    message = {**body, "signature": signature(KEY, body)}
    field = data.draw(st.sampled_from([*sorted(body), "added"]))
    message[field] = data.draw(JSON.filter(lambda v: v != message.get(field)))
    assert not signature_ok(message, [KEY.public_key()])
    assert not believed(Judged(kind, "site", "WOW-1", message), ENROLLED)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=8), JSON, max_size=5))
def test_signed_bytes_are_rfc8785_on_both_sides(body: dict[str, Any]) -> None:
    """What the appliance signs is what any RFC 8785 library rebuilds from the parsed message."""
    assert signed_bytes(body) == rfc8785.dumps({k: v for k, v in body.items() if k != "signature"})
    event = {"type": "x", "data": body}
    inner = {k: v for k, v in body.items() if k != "signature"}
    assert event_signed_bytes(event) == rfc8785.dumps({"type": "x", "data": inner})


def test_a_forged_retained_state_does_not_renumber_the_appliance(tmp_path: Path) -> None:
    """On connect the appliance reads back its retained state to notice a database that lost
    events; a state it did not sign, claiming a higher seq, must not move its numbering."""
    data = tmp_path / "data"
    store = signing_store(data)
    with Broker(tmp_path / "broker") as broker:
        forger = Collector(broker.port, "unused/topic")
        forged = {"state": "available", "staff_id": None, "seq": 5000, "event_id": "x", "chain": None, "source": SOURCE}
        forger.client.publish(f"{PREFIX}/state", json.dumps(forged), qos=1, retain=True).wait_for_publish(5)
        forger.close()
        store.commit(in_use("ana"), [checkout("ana")], CONTEXT)
        running = publisher(mqtt_config(broker.port), data, settings=FAST, key=KEY)
        events = Collector(broker.port, f"{PREFIX}/events/#")
        running.start()
        try:
            got = events.wait_until(bool)
        finally:
            running.stop()
            events.close()
    assert [m.json()["data"]["seq"] for m in got] == [1] and store.rewind() is None


def test_a_lost_database_still_renumbers_above_its_own_signed_state(tmp_path: Path) -> None:
    """The check above must not blind the appliance to its own state: a database that lost its
    events, with the same key, moves above the seq its signed retained state names, re-signed."""
    with Broker(tmp_path / "broker") as broker:
        events = Collector(broker.port, f"{PREFIX}/events/#")
        first = signing_store(tmp_path / "first")
        for name in ("ana", "bo", "cy"):
            first.commit(in_use(name), [checkout(name)], CONTEXT)
        running = publisher(mqtt_config(broker.port), tmp_path / "first", settings=FAST, key=KEY)
        running.start()
        try:
            events.wait_until(lambda got: len(got) >= 3)
            states = Collector(broker.port, f"{PREFIX}/state")
            states.wait_until(lambda got: any(m.json()["seq"] == 3 for m in got))
            states.close()
        finally:
            running.stop()
        wiped = signing_store(tmp_path / "wiped")
        wiped.commit(in_use("dee"), [checkout("dee")], CONTEXT)
        running = publisher(mqtt_config(broker.port), tmp_path / "wiped", settings=FAST, key=KEY)
        running.start()
        try:
            got = events.wait_until(lambda got: len(got) >= 4)
        finally:
            running.stop()
            events.close()
    last = got[3].json()
    assert last["data"]["seq"] == 4 and event_signature_ok(last, [KEY.public_key()])
    assert wiped.rewind() is not None
