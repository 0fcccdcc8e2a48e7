"""The kit's pcscd: a real pcscd with vpcd.

It lives in `handoff.testing.pcscd`, which the demo and the benches share.
"""

import pytest

from handoff.testing.pcscd import PCSCD, PIDFILE, SOCKET, VPCD_PORT, ensure_running, restart, wait_until_empty

__all__ = ["ONE_PCSCD", "PCSCD", "PIDFILE", "SOCKET", "VPCD_PORT", "ensure_running", "restart", "wait_until_empty"]

ONE_PCSCD = pytest.mark.pcscd
"""The machine has one pcscd and one vpcd slot: tests that use them take turns in a pytest process
of their own, beside the xdist workers (the Makefile's `test`)."""
