"""`handoff doctor`: one line per check, and a non-zero exit when anything fails."""

from __future__ import annotations

import argparse
from pathlib import Path

from handoff.cli.common import add_config_option
from handoff.config import resolve_config_path
from handoff.doctor.result import Status
from handoff.doctor.run import run_checks
from handoff.doctor.system import PROC_MODULES


def register(doctor: argparse.ArgumentParser) -> None:
    add_config_option(doctor)
    doctor.add_argument("--timeout", type=float, default=5.0, metavar="S", help="broker timeout (default 5)")
    doctor.add_argument("--proc-modules", type=Path, default=PROC_MODULES, help=argparse.SUPPRESS)
    doctor.set_defaults(func=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    failures = 0
    for result in run_checks(resolve_config_path(args.config), args.proc_modules, args.timeout):
        print(result.line(), flush=True)
        failures += result.status is Status.FAIL
    return 1 if failures else 0
