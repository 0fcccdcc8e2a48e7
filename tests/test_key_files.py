"""Private keys are refused at start unless only their owner may read them, and every bad key
file (wrong mode, wrong type, missing) is one line on stderr naming its config key, exit 2."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from handoff.audit.keys import load_public_keys, load_signing_key, private_pem, public_pem
from handoff.audit.signature import fingerprint
from handoff.errors import ConfigError
from handoff.provision.render import render_toml
from tests.kit.cli import CliRunner
from tests.kit.config import DEVICE, SITE, Layout
from tests.kit.keys import write_audit_key
from tests.kit.pki import make_ca, server_certificate, write_cert


def one_line_naming(result: subprocess.CompletedProcess[str], key: str) -> None:
    stderr = result.stderr
    assert result.returncode == 2, stderr
    assert key in stderr and len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr, stderr


def spoil(path: Path, how: str) -> None:
    """Make a good private key file bad in one way."""
    if how == "0644":
        path.chmod(0o644)
    elif how == "0640":
        path.chmod(0o640)
    elif how == "public key":
        path.write_bytes(public_pem(Ed25519PrivateKey.generate()))
    elif how == "not Ed25519":
        ec_key = ec.generate_private_key(ec.SECP256R1())
        path.write_bytes(
            ec_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    elif how == "missing":
        path.unlink()


HOW = ["0644", "0640", "public key", "not Ed25519", "missing"]


@pytest.mark.parametrize("how", HOW)
def test_a_bad_audit_key_stops_the_appliance_naming_it(appliance: Layout, cli: CliRunner, how: str) -> None:
    key, _ = write_audit_key(appliance.root)
    appliance.configure(audit={"key_file": str(key)})
    spoil(key, how)
    one_line_naming(cli("run", "-c", appliance.config), "audit.key_file")


@pytest.mark.parametrize("how", ["0644", "missing"])
def test_a_bad_tls_client_key_stops_the_appliance_naming_it(
    appliance: Layout, cli: CliRunner, tmp_path: Path, how: str
) -> None:
    ca = make_ca()
    cert, key = server_certificate(ca, tmp_path / "pki")
    mqtt = {
        "url": "mqtts://127.0.0.1:8883",
        "ca_file": str(write_cert(ca.cert, tmp_path / "ca.pem")),
        "cert_file": str(cert),
        "key_file": str(key),
    }
    appliance.configure(mqtt=mqtt)
    spoil(key, how)
    one_line_naming(cli("run", "-c", appliance.config), "mqtt.key_file")


def agent_config(root: Path, key: Path, appliance_key: Path) -> Path:
    identity = {
        "site": SITE,
        "device_id": DEVICE,
        "key_file": str(key),
        "appliance_key": str(appliance_key),
        "data_dir": str(root / "agent-data"),
    }
    path = root / "agent.toml"
    path.write_text(render_toml({"agent": identity, "activity": {"kind": "none"}}, {"actions": [{"kind": "logind"}]}))
    return path


@pytest.mark.parametrize("how", HOW)
def test_a_bad_agent_key_stops_the_agent_naming_it(tmp_path: Path, cli: CliRunner, how: str) -> None:
    key = tmp_path / "agent.key"
    key.write_bytes(private_pem(Ed25519PrivateKey.generate()))
    key.chmod(0o600)
    _, public = write_audit_key(tmp_path)
    spoil(key, how)
    one_line_naming(cli("agent", "-c", agent_config(tmp_path, key, public)), "agent.key_file")


@pytest.mark.parametrize("how", ["private key", "missing", "empty"])
def test_a_bad_appliance_key_stops_the_agent_naming_it(tmp_path: Path, cli: CliRunner, how: str) -> None:
    key = tmp_path / "agent.key"
    key.write_bytes(private_pem(Ed25519PrivateKey.generate()))
    key.chmod(0o600)
    private, public = write_audit_key(tmp_path)
    if how == "private key":
        public.write_bytes(private.read_bytes())
    elif how == "missing":
        public.unlink()
    else:
        public.write_text("")
    one_line_naming(cli("agent", "-c", agent_config(tmp_path, key, public)), "agent.appliance_key")


def test_status_prints_the_appliance_key_fingerprint(appliance: Layout, cli: CliRunner) -> None:
    """What biomed compares with the console's when enrolling the cart."""
    key, _ = write_audit_key(appliance.root)
    appliance.configure(audit={"key_file": str(key)})
    shown = cli("status", "-c", appliance.config)
    assert shown.returncode == 0, shown.stderr
    assert f"appliance key: fingerprint {fingerprint(load_signing_key(key))}" in shown.stdout
    key.chmod(0o644)
    spoiled = cli("status", "-c", appliance.config)
    assert spoiled.returncode == 0 and "appliance key: UNUSABLE: audit.key_file" in spoiled.stdout
    appliance.configure()
    assert "appliance key: none" in cli("status", "-c", appliance.config).stdout


def test_keys_openssl_writes_load_to_the_same_key_as_cryptography_reads(tmp_path: Path) -> None:
    """The fixed-layout reader and `cryptography`'s loader agree on the files people make."""
    private = tmp_path / "audit.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(private)], check=True)
    private.chmod(0o600)
    public = tmp_path / "audit.pub"
    subprocess.run(["openssl", "pkey", "-in", str(private), "-pubout", "-out", str(public)], check=True)
    expected = serialization.load_pem_private_key(private.read_bytes(), password=None)
    assert isinstance(expected, Ed25519PrivateKey)
    key = load_signing_key(private)
    assert key.private_bytes_raw() == expected.private_bytes_raw()
    assert [k.public_bytes_raw() for k in load_public_keys(public, "agent.keys_file")] == [
        expected.public_key().public_bytes_raw()
    ]


def test_a_truncated_public_key_is_refused_naming_its_key(tmp_path: Path) -> None:
    der = bytes.fromhex("302a300506032b6570032100") + bytes(31)
    path = tmp_path / "agents.pem"
    path.write_text(f"-----BEGIN PUBLIC KEY-----\n{base64.b64encode(der).decode()}\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ConfigError, match=r"agent\.keys_file: .* does not parse"):
        load_public_keys(path, "agent.keys_file")
