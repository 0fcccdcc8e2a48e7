"""Free space under the data directory, so a filling disk is reported before it refuses writes."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Final

LOW_FREE_BYTES: Final = 64 * 1024 * 1024
LOW_FREE_FRACTION: Final = 0.05


@dataclass(frozen=True)
class DiskState:
    free_bytes: int
    total_bytes: int

    @property
    def low(self) -> bool:
        return self.free_bytes < LOW_FREE_BYTES or self.free_bytes < self.total_bytes * LOW_FREE_FRACTION

    def as_dict(self) -> dict[str, object]:
        return {"free_bytes": self.free_bytes, "total_bytes": self.total_bytes, "low": self.low}


def disk_state(path: Path) -> DiskState:
    usage = shutil.disk_usage(path)
    return DiskState(free_bytes=usage.free, total_bytes=usage.total)
