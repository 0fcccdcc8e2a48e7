"""`handoff badges import|list|revoke` through the real CLI and a real database."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kit.cli import CliRunner
from tests.kit.config import Layout

GOOD = "uid,staff_id,name,role,revoked\n04A1B2C3,n1001,Ana Diaz,RN,\n04a1b2c3d4e5f6,d2002,Bo Chen,MD,false\n"


def _csv(tmp_path: Path, body: str, name: str = "badges.csv") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def test_import_list_revoke_never_show_uid(appliance: Layout, cli: CliRunner) -> None:
    imported = cli("badges", "import", _csv(appliance.root, GOOD), "-c", appliance.config)
    assert imported.returncode == 0, imported.stderr
    assert "imported 2 badges" in imported.stdout

    listed = cli("badges", "list", "-c", appliance.config)
    assert listed.returncode == 0, listed.stderr
    assert "n1001" in listed.stdout and "d2002" in listed.stdout
    assert "04A1B2C3".lower() not in listed.stdout.lower()

    revoked = cli("badges", "revoke", "n1001", "-c", appliance.config)
    assert revoked.returncode == 0, revoked.stderr
    listed = cli("badges", "list", "-c", appliance.config)
    line = next(row for row in listed.stdout.splitlines() if row.startswith("n1001"))
    assert "revoked" in line

    database = (appliance.data_dir / "handoff.db").read_bytes()
    assert b"04A1B2C3" not in database.upper()
    assert bytes.fromhex("04A1B2C3") not in database


def test_config_from_environment(appliance: Layout, cli: CliRunner) -> None:
    result = cli("badges", "list", env={"HANDOFF_CONFIG": str(appliance.config)})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("body", "culprit"),
    [
        ("uid,staff,name,role\n04A1B2C3,a,b,c\n", "line 1"),
        ("uid,staff_id,name,role\n04A1B2C3,a,b,c\nZZ11,b,c,d\n", "line 3: uid is not hexadecimal"),
        ("uid,staff_id,name,role\n04A1B2,a,b,c\n", "line 2: uid is 3 bytes"),
        ("uid,staff_id,name,role\n04A1B2C3,a,b\n", "line 2: expected 4 columns"),
        ("uid,staff_id,name,role\n04A1B2C3,,b,c\n", "line 2: staff_id is empty"),
        ("uid,staff_id,name,role,revoked\n04A1B2C3,a,b,c,maybe\n", "line 2: revoked must be"),
        ("uid,staff_id,name,role\n04A1B2C3,a,b,c\n04:a1:b2:c3,d,e,f\n", "line 3: this uid already appears"),
        ("uid,staff_id,name,role\n04A1B2C3,-rf,b,c\n", "line 2: staff_id must be 1 to 64 of"),
        ("uid,staff_id,name,role\n04A1B2C3,--help,b,c\n", "line 2: staff_id must be"),
        ("uid,staff_id,name,role\n04A1B2C3,{session_id},b,c\n", "line 2: staff_id must be"),
        ("uid,staff_id,name,role\n04A1B2C3,ana diaz,b,c\n", "line 2: staff_id must be"),
        ("uid,staff_id,name,role\n04A1B2C3," + "a" * 65 + ",b,c\n", "line 2: staff_id must be"),
    ],
)
def test_bad_csv_refused_whole_and_old_directory_kept(
    appliance: Layout, cli: CliRunner, body: str, culprit: str
) -> None:
    assert cli("badges", "import", _csv(appliance.root, GOOD), "-c", appliance.config).returncode == 0
    bad = _csv(appliance.root, body, "bad.csv")
    result = cli("badges", "import", bad, "-c", appliance.config)
    assert result.returncode == 2
    assert culprit in result.stderr and str(bad) in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    listed = cli("badges", "list", "-c", appliance.config)
    assert "n1001" in listed.stdout and "d2002" in listed.stdout


def test_revoke_unknown_staff(appliance: Layout, cli: CliRunner) -> None:
    result = cli("badges", "revoke", "nobody", "-c", appliance.config)
    assert result.returncode == 2 and "nobody" in result.stderr


@pytest.mark.parametrize(
    ("mode", "content", "culprit"),
    [(0o644, "0123456789abcdef0123", "readable or writable by others"), (0o600, "\n", "is empty")],
)
def test_bad_secret_refused(appliance: Layout, cli: CliRunner, mode: int, content: str, culprit: str) -> None:
    appliance.secret.write_text(content)
    appliance.secret.chmod(mode)
    result = cli("badges", "import", _csv(appliance.root, GOOD), "-c", appliance.config)
    assert result.returncode == 2
    assert "badge_secret_file" in result.stderr and culprit in result.stderr


def test_missing_secret_refused(appliance: Layout, cli: CliRunner) -> None:
    appliance.secret.unlink()
    result = cli("badges", "import", _csv(appliance.root, GOOD), "-c", appliance.config)
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_felica_and_piv_identifiers_import(appliance: Layout, cli: CliRunner) -> None:
    body = (
        "uid,staff_id,name,role\n"
        "0123456789ABCDEF,f3003,Fay Ito,RT\n"
        "3f2504e0-4f89-41d3-9a0c-0305e82c3301,p4004,Pat Roe,MD\n"
    )
    result = cli("badges", "import", _csv(appliance.root, body), "-c", appliance.config)
    assert result.returncode == 0, result.stderr
    assert "imported 2 badges" in result.stdout


@pytest.mark.parametrize("body", ["uid,staff_id,name,role\n", "uid,staff_id,name,role\n\n,,,\n"])
def test_header_only_csv_is_refused_unless_allow_empty(appliance: Layout, cli: CliRunner, body: str) -> None:
    assert cli("badges", "import", _csv(appliance.root, GOOD), "-c", appliance.config).returncode == 0
    empty = _csv(appliance.root, body, "empty.csv")
    refused = cli("badges", "import", empty, "-c", appliance.config)
    assert refused.returncode == 2 and "--allow-empty" in refused.stderr and str(empty) in refused.stderr
    assert "Traceback" not in refused.stderr and refused.stderr.count("\n") == 1
    assert "2 badges" in cli("badges", "list", "-c", appliance.config).stdout
    allowed = cli("badges", "import", empty, "--allow-empty", "-c", appliance.config)
    assert allowed.returncode == 0, allowed.stderr
    assert "0 badges" in cli("badges", "list", "-c", appliance.config).stdout


@pytest.mark.parametrize(
    ("cell", "code"),
    [("Ana\x1b[2J", "U+001B"), ("Ana\x00", "U+0000"), ('"Ana\nDiaz"', "U+000A"), ("Ana\u202eziD", "U+202E")],
)
def test_control_characters_in_names_are_refused(appliance: Layout, cli: CliRunner, cell: str, code: str) -> None:
    bad = _csv(appliance.root, f"uid,staff_id,name,role\n04A1B2C3,n1001,{cell},RN\n", "bad.csv")
    result = cli("badges", "import", bad, "-c", appliance.config)
    assert result.returncode == 2 and f"line 2: name holds a control or invisible character ({code})" in result.stderr
    assert "\x1b" not in result.stderr and "Traceback" not in result.stderr
    assert "0 badges" in cli("badges", "list", "-c", appliance.config).stdout


def test_import_takes_pacs_and_wedge_identifiers_and_keeps_none_of_them(appliance: Layout, cli: CliRunner) -> None:
    rows = "uid,staff_id,name,role\nh10301:12:3456,ana,Ana,RN\nc1k35:4001:99821,ana,Ana,RN\ntext:0012345,bo,Bo,MD\n"
    imported = cli("badges", "import", _csv(appliance.root, rows), "-c", appliance.config)
    assert imported.returncode == 0, imported.stderr
    assert "imported 3 badges" in imported.stdout
    stored = b"".join(path.read_bytes() for path in appliance.data_dir.glob("handoff.db*"))
    for raw in (b"h10301", b"c1k35", b"0012345"):
        assert raw not in stored
    refused = cli(
        "badges",
        "import",
        _csv(appliance.root, "uid,staff_id,name,role\nh10301:300:1,x,X,RN\n"),
        "-c",
        appliance.config,
    )
    assert refused.returncode == 2 and "line 2" in refused.stderr and "facility 300" in refused.stderr
