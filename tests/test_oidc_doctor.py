"""`handoff ledger doctor` checks the `[oidc]` sign-in against the real provider the sign-in
tests run (tests/kit/oidc.py): a line each for discovery, issuer, client and redirect address;
a wrong issuer and an unreachable provider each fail in one line that names the key to fix."""

from __future__ import annotations

from pathlib import Path

from handoff.doctor.result import Status
from handoff.ledger import oidc_doctor
from handoff.ledger.config import load_ledger_config
from handoff.testing.broker import Broker
from handoff.testing.net import free_tcp_port
from tests.kit.cli import CliRunner
from tests.kit.ledger import ledger_config
from tests.kit.oidc import CLIENT_ID, client_secret_file, oidc_provider

CONSOLE = {"listen": "127.0.0.1:8080", "allow_insecure": True}


def oidc(root: Path, issuer: str) -> dict[str, object]:
    return {
        "name": "Hospital ID",
        "issuer": issuer,
        "client_id": CLIENT_ID,
        "client_secret_file": str(client_secret_file(root)),
        "roles": {"biomed-admins": "admin"},
    }


def lines(root: Path, issuer: str) -> dict[str, tuple[Status, str]]:
    config = load_ledger_config(ledger_config(root, "sqlite:///unused.db", 1883, CONSOLE, oidc=oidc(root, issuer)))
    assert config.oidc is not None
    results = [check() for check in oidc_doctor.checks(config.oidc, config.console)]
    return {result.check: (result.status, result.line()) for result in results}


def test_the_doctor_passes_the_provider_the_console_signs_in_with(tmp_path: Path, cli: CliRunner) -> None:
    callback = "http://127.0.0.1:8080/login/oidc/callback"
    with oidc_provider(tmp_path, [callback], {}) as provider, Broker(tmp_path / "broker") as broker:
        database = f"sqlite:///{tmp_path / 'ledger.db'}"
        config = ledger_config(tmp_path, database, broker.port, CONSOLE, oidc=oidc(tmp_path, provider.issuer))
        result = cli("ledger", "doctor", "-c", config)
    assert result.returncode == 0, result.stdout + result.stderr
    said = [line for line in result.stdout.splitlines() if " oidc " in f" {line}"]
    assert [line.split(":")[0] for line in said] == [
        "PASS  oidc discovery",
        "PASS  oidc issuer",
        "PASS  oidc client",
        "PASS  oidc redirect",
    ], result.stdout
    assert "with its end-session endpoint" in said[0] and f"{provider.issuer} matches" in said[1]
    assert "http://127.0.0.1:8080/login/oidc/callback: loopback only" in said[3]


def test_an_issuer_other_than_the_one_the_provider_names_fails(tmp_path: Path) -> None:
    """The same provider asked under another name for its host: its document names 127.0.0.1,
    so every ID token would carry an issuer the console does not expect."""
    with oidc_provider(tmp_path, ["http://127.0.0.1:8080/login/oidc/callback"], {}) as provider:
        found = lines(tmp_path, provider.issuer.replace("127.0.0.1", "localhost"))
    assert found["oidc discovery"][0] is Status.PASS
    status, line = found["oidc issuer"]
    assert status is Status.FAIL and f"calls itself '{provider.issuer}'" in line and "oidc.issuer" in line, line
    assert found["oidc client"][0] is Status.PASS
    with oidc_provider(tmp_path, ["http://127.0.0.1:8080/login/oidc/callback"], {}) as provider:
        status, line = lines(tmp_path, f"{provider.issuer}/realms/none")["oidc discovery"]
    assert status is Status.FAIL and "answered HTTP 404; check oidc.issuer" in line, line


def test_an_unreachable_provider_fails_in_one_line_naming_the_key(tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_tcp_port()}"
    found = lines(tmp_path, nobody)
    status, line = found["oidc discovery"]
    assert status is Status.FAIL and "cannot be reached" in line and "check oidc.issuer" in line, line
    assert "\n" not in line and found["oidc issuer"][0] is Status.SKIP


def test_a_secret_others_may_read_fails_the_client_line(tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_tcp_port()}"
    config = load_ledger_config(
        ledger_config(tmp_path, "sqlite:///unused.db", 1883, CONSOLE, oidc=oidc(tmp_path, nobody))
    )
    assert config.oidc is not None
    config.oidc.client_secret_file.chmod(0o644)
    result = oidc_doctor.check_client(config.oidc)
    assert result.status is Status.FAIL and "chmod 600" in result.detail, result.line()
