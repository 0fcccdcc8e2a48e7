"""The kit's ledger: the ledger and its console as child processes, and enrolment of keys.

It lives in `handoff.testing.ledger`, which the demo and the benches share.
"""

from handoff.testing.ledger import (
    Console,
    Ledger,
    add_user,
    audit_key,
    enrol_key,
    enrolled,
    enrolled_fleet,
    ledger_config,
)

__all__ = ["Console", "Ledger", "add_user", "audit_key", "enrol_key", "enrolled", "enrolled_fleet", "ledger_config"]
