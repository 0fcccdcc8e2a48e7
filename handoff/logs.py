"""Log lines of the long-running commands (`run`, `agent`, `ledger run|serve`), set up one way."""

from __future__ import annotations

import logging
import os
import sys


def configure_logging() -> None:
    """The journal adds its own timestamps; a terminal wants them in the line."""
    under_journal = "JOURNAL_STREAM" in os.environ
    fmt = "%(levelname)s %(message)s" if under_journal else "%(asctime)s %(levelname)s %(message)s"
    logging.basicConfig(level=logging.INFO, format=fmt, stream=sys.stderr)
