"""`handoff ...` run through its entry point, in this process: the CLI's behaviour at the cost
of a function call instead of a fresh interpreter (1.5 s each, hundreds of calls).

Only `handoff.cli.main.main(argv)` is called, so however the CLI builds its parser the test
sees what a user would: stdout, stderr and the exit status. What a command may change for the
whole process (environment, standard streams, root logger handlers, SIGTERM/SIGINT handlers) is
put back after each call. Starting the program as a real process is tested once per command in
the suite's tests/test_cli_smoke.py, and long-running commands are child processes (`handoff.testing.child`).
"""

from __future__ import annotations

import gc
import io
import logging
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from handoff.cli.main import main
from handoff.testing.child import handoff_argv, handoff_env

CliRunner = Callable[..., subprocess.CompletedProcess[str]]
_HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)


def _stream() -> io.TextIOWrapper:
    """A text stream with a `.buffer`, as sys.stdout has, so binary writers work too."""
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="")


def _text(stream: io.TextIOWrapper) -> str:
    stream.flush()
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode("utf-8", errors="replace")


@contextmanager
def _environment(extra: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _process_state(stdout: io.TextIOWrapper, stderr: io.TextIOWrapper, input_text: str) -> Iterator[None]:
    """Standard streams, root logging and signal handlers as a fresh process has them, then back."""
    streams = sys.stdin, sys.stdout, sys.stderr
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    actions = {signum: signal.getsignal(signum) for signum in _HANDLED_SIGNALS}
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(input_text), stdout, stderr
    root.handlers = []
    try:
        yield
    finally:
        gc.collect()  # what the command left open (a database connection) is closed, as at exit
        signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, action in actions.items():
            signal.signal(signum, action)
        for handler in root.handlers:
            handler.close()
        root.handlers, root.level = handlers, level
        sys.stdin, sys.stdout, sys.stderr = streams


def _status(code: object) -> int:
    """What the interpreter makes of `sys.exit(code)`."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1


def run_handoff(
    *args: str | Path, env: dict[str, str] | None = None, timeout: float = 60, input: str = ""
) -> subprocess.CompletedProcess[str]:
    """`handoff ARGS` with `env` added to the environment and `input` (default empty, so a command
    that would prompt fails instead of hanging) on stdin. A command still running after `timeout`
    seconds is interrupted and raises `subprocess.TimeoutExpired`, as `subprocess.run` does."""
    argv = [str(arg) for arg in args]
    command = handoff_argv(*argv)
    """What a user would have run, as `subprocess.run` would report it."""
    if argv[:1] == ["sim"]:
        # A simulated badge or card stands for hardware outside the appliance: in this process it
        # would share the GIL with the readers it talks to, and could come and go unseen.
        return subprocess.run(
            command, env=handoff_env(env), input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
    stdout, stderr = _stream(), _stream()

    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise subprocess.TimeoutExpired(command, timeout)

    with _environment(env or {}), _process_state(stdout, stderr, input):
        signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            code = main(argv)
        except SystemExit as exc:
            code = _status(exc.code)
        except subprocess.TimeoutExpired:
            raise
        except Exception:  # an uncaught error reaches the user as the interpreter shows it
            traceback.print_exc()
            code = 1
    return subprocess.CompletedProcess(command, code, _text(stdout), _text(stderr))
