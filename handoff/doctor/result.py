"""The value every check returns, so the CLI prints it and `status` can reuse it."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Status(enum.Enum):
    PASS = "PASS"  # noqa: S105 - a check verdict, not a password
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class CheckResult:
    status: Status
    check: str
    detail: str

    def line(self) -> str:
        return f"{self.status.value}  {self.check}: {self.detail}"


def passed(check: str, detail: str) -> CheckResult:
    return CheckResult(Status.PASS, check, detail)


def warned(check: str, detail: str) -> CheckResult:
    return CheckResult(Status.WARN, check, detail)


def failed(check: str, detail: str) -> CheckResult:
    return CheckResult(Status.FAIL, check, detail)


def skipped(check: str, detail: str) -> CheckResult:
    return CheckResult(Status.SKIP, check, detail)
