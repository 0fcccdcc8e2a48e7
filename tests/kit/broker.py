"""The kit's broker: a real mosquitto.

It lives in `handoff.testing.broker`, which the demo and the benches share.
"""

from handoff.testing.broker import MOSQUITTO, Broker

__all__ = ["MOSQUITTO", "Broker"]
