"""The kit's outbox: events, broker configs and publishers for the outbox tests.

It lives in `handoff.testing.outbox`, which the demo and the benches share.
"""

from handoff.testing.outbox import CONTEXT, SOURCE, checkout, data_dir, in_use, mqtt_config, publisher, seqs

__all__ = ["CONTEXT", "SOURCE", "checkout", "data_dir", "in_use", "mqtt_config", "publisher", "seqs"]
