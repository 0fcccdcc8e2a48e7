"""One `handoff run` (or `handoff agent`) per data directory: a second would double every tap
and fight for the broker.

The lock is `flock` on a file in the data directory, so the kernel drops it when the holder
dies however it dies (kill -9, power loss): no stale lock to clean up. The file holds the
holder's pid, for the refusal message only.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Final, TextIO

from handoff.data_dir import ensure_data_dir
from handoff.errors import ConfigError

LOCK_NAME: Final = "handoff.lock"


def hold_instance_lock(data_dir: Path, command: str = "handoff run", key: str = "appliance.data_dir") -> TextIO:
    """Take the lock, or refuse naming the lock file and the pid holding it.

    `command` is the program that holds its data directory this way, and `key` the config key
    of that directory. The caller keeps the returned file open for as long as it runs; closing
    it releases the lock.
    """
    ensure_data_dir(data_dir, key)
    path = data_dir / LOCK_NAME
    handle = path.open("a+", encoding="ascii")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise ConfigError(
            f"another {command} holds the lock {path} (pid {holder}); stop it first, or give this config its own {key}"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
