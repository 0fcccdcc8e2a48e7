"""The kit's collector: an MQTT subscriber that records what it receives.

It lives in `handoff.testing.collector`, which the demo and the benches share.
"""

from handoff.testing.collector import WAIT_S, Collector, Message

__all__ = ["WAIT_S", "Collector", "Message"]
