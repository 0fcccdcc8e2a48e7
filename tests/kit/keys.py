"""The kit's keys: an appliance's audit key pair as `handoff provision` writes it.

It lives in `handoff.testing.keys`, which the demo and the benches share.
"""

from handoff.testing.keys import write_audit_key

__all__ = ["write_audit_key"]
