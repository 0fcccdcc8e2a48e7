"""Each command started as the real program once: `python -m handoff` parses, dispatches and
turns the command's outcome into the process's exit status and streams.

Everything else about the CLI is tested in process through `handoff.cli.main.main`
(tests/kit/cli.py); these are the only places a short-lived command gets its own interpreter.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from handoff import __version__
from handoff.testing.child import handoff_argv, handoff_env
from tests.kit.config import Layout


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        handoff_argv(*args),
        check=False,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=handoff_env(),
        timeout=60,
    )


def refused_in_one_line(done: subprocess.CompletedProcess[str], words: str) -> None:
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1 and words in done.stderr, done.stderr


def test_version() -> None:
    done = run("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"handoff {__version__}")


def test_run_refuses_a_missing_config(tmp_path: Path) -> None:
    refused_in_one_line(run("run", "-c", tmp_path / "none.toml"), "none.toml")


def test_badges_and_outbox_and_status_read_a_fresh_appliance(appliance: Layout) -> None:
    listed = run("badges", "list", "-c", appliance.config)
    assert (listed.returncode, listed.stderr) == (0, ""), listed
    exported = run("outbox", "export", "-c", appliance.config)
    assert (exported.returncode, exported.stdout, exported.stderr) == (0, "", ""), exported
    status = run("status", "-c", appliance.config)
    assert status.returncode == 0 and "available" in status.stdout, status


def test_sim_refuses_a_bad_device() -> None:
    refused_in_one_line(run("sim", "tap", "04A1B2C3", "--device", "udp:nowhere"), "udp:nowhere")


def test_provision_refuses_bad_usage() -> None:
    refused_in_one_line(run("provision", "--no-such-flag"), "--no-such-flag")


def test_doctor_fails_on_a_missing_config(tmp_path: Path) -> None:
    done = run("doctor", "-c", tmp_path / "none.toml")
    assert done.returncode != 0 and "none.toml" in done.stdout and "Traceback" not in done.stderr, done


def test_audit_verify_refuses_an_unreadable_trail(tmp_path: Path) -> None:
    refused_in_one_line(run("audit", "verify", tmp_path / "missing.jsonl"), "missing.jsonl")


def test_agent_keygen_prints_a_public_key(tmp_path: Path) -> None:
    done = run("agent", "keygen", "--out", tmp_path / "agent.key")
    assert done.returncode == 0 and "BEGIN PUBLIC KEY" in done.stdout, done
    assert (tmp_path / "agent.key").stat().st_mode & 0o077 == 0


def test_ledger_refuses_a_missing_config(tmp_path: Path) -> None:
    refused_in_one_line(
        run("ledger", "who", "D", "--at", "2026-01-01T00:00:00Z", "-c", tmp_path / "no.toml"), "no.toml"
    )
