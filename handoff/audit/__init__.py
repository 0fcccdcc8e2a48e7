"""The tamper-evident trail: hash-linked events, signed checkpoints, and their verification.

`chain` and `checkpoint` are what the appliance uses to make the trail; `verify` is what an
auditor, a SIEM or the ledger uses to check it. See docs/audit.md for the construction.
"""
