"""A forger with nothing but publish rights on the broker, for demos and tests of trust.

It publishes what an attacker who took a cart's Pi apart, or found a loose ACL, could: a
well-formed, correctly chained checkout on a real device's topic, from a made-up source, signed
by a key of its own. A ledger must keep it apart and open `untrusted_source`, never believe it.
"""

from __future__ import annotations

import time

import orjson
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from handoff.sim.fleet import SimAppliance


def forge(host: str, port: int, *, prefix: str, site: str, device_id: str, staff_id: str) -> str:
    """Publish one forged checkout by `staff_id` on `device_id`, back-dated a minute; its id."""
    forger = SimAppliance(site, device_id, prefix, reader="forger")
    forger.staff = iter([staff_id])
    topic, payload = forger.next_event(time.time() - 60)
    client = Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.connect(host, port, keepalive=30)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()
    return str(orjson.loads(payload)["id"])
