"""The one test kit: real brokers, pcscd, subscribers, configs and CLI runs for tests, bench and demo.

Everything that starts a real part or writes an appliance's files lives here once, so the
tests, `bench/` and `demo/` exercise the appliance the same way and cannot drift apart. What
the demo and the benches use too is in `handoff.testing`; the modules here name it for the
tests, and add what only tests need (the appliance, core and command drivers, pytest marks).
"""
