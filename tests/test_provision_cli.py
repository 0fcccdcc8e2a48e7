"""`handoff provision` run the way biomed would: a separate process, no terminal."""

from __future__ import annotations

import os
import pty
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from handoff.audit.keys import load_public_keys, load_signing_key
from handoff.audit.signature import fingerprint
from handoff.badge_ref import load_secret
from handoff.cli.provision import FLAGS
from handoff.config import READER_KINDS, SECTIONS, PcscReaderConfig, load_config
from handoff.doctor.result import Status
from handoff.doctor.system import check_gpio
from handoff.feedback.board import default_board
from tests.kit.cli import handoff_env, run_handoff
from tests.kit.config import Layout
from tests.kit.pki import make_ca, write_cert
from tests.kit.tls_broker import tls_broker

handoff = run_handoff


def base_flags(tmp_path: Path, *extra: str) -> list[str | Path]:
    return [
        "provision",
        "--output-dir",
        tmp_path / "etc",
        "--site",
        "st-elsewhere",
        "--device-id",
        "WOW-3N-07",
        "--reader-id",
        "rdr-0042",
        "--data-dir",
        tmp_path / "data",
        "--mqtt-url",
        "mqtts://127.0.0.1:8883",
        "--nfc",
        "udp:127.0.0.1:54321",
        "--board",
        "none",
        *extra,
    ]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_provision_writes_files_that_the_other_commands_accept(tmp_path: Path) -> None:
    done = handoff(*base_flags(tmp_path, "--generate-secret", "--idle-timeout-s", "1.5", "--no-broker-check"))
    assert done.returncode == 0, done.stderr
    etc = tmp_path / "etc"
    config = load_config(etc / "handoff.toml")
    assert config.appliance.site == "st-elsewhere"
    assert config.policy.idle_timeout_s == 1.5
    assert config.readers[0].path == "udp:127.0.0.1:54321"
    assert config.mqtt.key_file == etc / "reader.key"
    assert (mode(etc / "badge.key"), mode(etc / "reader.key"), mode(etc / "reader.csr")) == (0o600, 0o600, 0o644)
    load_secret(etc / "badge.key")
    listed = handoff("badges", "list", "-c", etc / "handoff.toml")
    assert listed.returncode == 0, listed.stderr
    assert "0 badges" in listed.stdout


def test_csr_verifies_and_names_reader_site_and_device(tmp_path: Path) -> None:
    assert handoff(*base_flags(tmp_path, "--generate-secret", "--no-broker-check")).returncode == 0
    csr = x509.load_pem_x509_csr((tmp_path / "etc" / "reader.csr").read_bytes())
    assert csr.is_signature_valid
    subject = {attr.oid: attr.value for attr in csr.subject}
    assert subject == {
        NameOID.COMMON_NAME: "rdr-0042",
        NameOID.ORGANIZATION_NAME: "st-elsewhere",
        NameOID.ORGANIZATIONAL_UNIT_NAME: "WOW-3N-07",
    }


def test_installed_secret_is_a_private_copy(tmp_path: Path) -> None:
    given = tmp_path / "site.key"
    given.write_text("a-site-secret-of-enough-length\n")
    assert handoff(*base_flags(tmp_path, "--secret-file", given, "--no-broker-check")).returncode == 0
    installed = tmp_path / "etc" / "badge.key"
    assert installed.read_bytes() == given.read_bytes()
    assert mode(installed) == 0o600


def test_bad_or_missing_flags_are_named(tmp_path: Path) -> None:
    cases = {
        "--site": ["--site", "two words", "--generate-secret"],
        "--mqtt-url": ["--mqtt-url", "mqtt://127.0.0.1:1883", "--generate-secret"],
        "--idle-timeout-s": ["--idle-timeout-s", "0", "--generate-secret"],
        "--protocol": ["--protocol", "4", "--generate-secret"],
        "--secret-file": [],
    }
    for flag, extra in cases.items():
        done = handoff(*base_flags(tmp_path, *extra, "--no-broker-check"))
        assert done.returncode == 2, (flag, done.stderr)
        assert flag in done.stderr and "Traceback" not in done.stderr, done.stderr
    missing = handoff("provision", "--output-dir", tmp_path / "etc", "--device-id", "W", "--generate-secret")
    assert missing.returncode == 2
    assert "--site is required" in missing.stderr
    assert not (tmp_path / "etc" / "handoff.toml").exists()


def test_existing_config_is_kept_without_force(tmp_path: Path) -> None:
    flags = base_flags(tmp_path, "--generate-secret", "--no-broker-check")
    assert handoff(*flags).returncode == 0
    key_before = (tmp_path / "etc" / "reader.key").read_bytes()
    again = handoff(*flags)
    assert again.returncode == 2
    assert "--force" in again.stderr
    assert handoff(*flags, "--force").returncode == 0
    assert (tmp_path / "etc" / "reader.key").read_bytes() == key_before


def test_broker_check_connects_once_the_csr_is_signed(tmp_path: Path) -> None:
    ca = make_ca()
    with tls_broker(ca, tmp_path / "broker") as broker:
        flags = base_flags(tmp_path, "--ca-file", broker.ca_file, "--generate-secret")
        flags[flags.index("mqtts://127.0.0.1:8883")] = f"mqtts://127.0.0.1:{broker.port}"
        first = handoff(*flags)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "WARN  broker: TLS to 127.0.0.1" in first.stdout
        csr = x509.load_pem_x509_csr((tmp_path / "etc" / "reader.csr").read_bytes())
        public_key = csr.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        cert = ca.sign(csr.subject, public_key, server=False, not_after=datetime.now(UTC) + timedelta(days=90))
        write_cert(cert, tmp_path / "etc" / "reader.crt")
        second = handoff(*flags, "--force")
        assert second.returncode == 0, second.stdout + second.stderr
        assert "PASS  broker: TLS and MQTT CONNECT" in second.stdout


def test_a_terminal_is_prompted_for_what_is_missing(tmp_path: Path) -> None:
    parent, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "handoff", "provision", "--output-dir", str(tmp_path / "etc"), "--no-broker-check"],
        stdin=child,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=handoff_env(),
    )
    os.close(child)
    os.write(parent, b"st-elsewhere\nWOW-3N-07\nmqtts://127.0.0.1:8883\n\n")
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(parent)
    assert proc.returncode == 0, err
    config = load_config(tmp_path / "etc" / "handoff.toml")
    assert (config.appliance.site, config.appliance.device_id) == ("st-elsewhere", "WOW-3N-07")
    load_secret(tmp_path / "etc" / "badge.key")


def test_provision_makes_a_piv_cart_with_card_pull_lock(tmp_path: Path) -> None:
    anchors = tmp_path / "piv-cas.pem"
    anchors.write_text("anchors\n")
    extra = ["--pcsc", "Virtual PCD", "--pcsc-auth", "piv-cak", "--pcsc-trust-anchors", str(anchors)]
    extra += ["--pcsc-lock-on-card-removal", "--generate-secret", "--no-broker-check"]
    done = handoff(*base_flags(tmp_path, *extra))
    assert done.returncode == 0, done.stderr
    readers = load_config(tmp_path / "etc" / "handoff.toml").readers
    assert [r.kind for r in readers] == ["nfc", "pcsc"]
    pcsc = readers[1]
    assert isinstance(pcsc, PcscReaderConfig)
    assert (pcsc.name, pcsc.auth, pcsc.trust_anchors, pcsc.lock_on_card_removal) == (
        "Virtual PCD",
        "piv-cak",
        anchors,
        True,
    )


def test_reader_and_new_table_errors_name_the_flag(tmp_path: Path) -> None:
    cases = {
        "--pcsc-trust-anchors": ["--pcsc", "", "--pcsc-auth", "piv-cak"],
        "--pcsc-auth": ["--pcsc", "", "--pcsc-auth", "pin"],
        "--osdp-scbk-file": ["--osdp", "/dev/ttyUSB0"],
        "--agent-confirm-s": ["--agent-keys-file", "/etc/handoff/agents.pem", "--agent-confirm-s", "1e9"],
        "--idle-timeout-s": ["--idle-timeout-s", "1e308"],
    }
    for flag, extra in cases.items():
        done = handoff(*base_flags(tmp_path, *extra, "--generate-secret", "--no-broker-check"))
        assert done.returncode == 2, (flag, done.stderr)
        assert done.stderr.startswith(f"handoff: {flag}: "), done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    orphan = handoff(*base_flags(tmp_path, "--osdp-baud", "9600", "--generate-secret", "--no-broker-check"))
    assert orphan.returncode == 2 and "--osdp-baud must follow a --osdp" in orphan.stderr


def test_every_config_key_has_one_flag_unless_provision_writes_it() -> None:
    by_key = {(f.section, f.key): f.flag for f in FLAGS}
    assert len(set(by_key.values())) == len(by_key)
    for section, model in SECTIONS.items():
        for key in model.__struct_fields__:
            written_by_provision = (section, key) in {
                ("appliance", "badge_secret_file"),
                ("mqtt", "cert_file"),
                ("mqtt", "key_file"),
            }
            assert ((section, key) in by_key) != written_by_provision, (section, key)
    for kind, reader in READER_KINDS.items():
        assert {key for (section, key) in by_key if section == kind} == set(reader.__struct_fields__)


def test_a_corrupt_reader_key_is_one_line(tmp_path: Path) -> None:
    flags = base_flags(tmp_path, "--generate-secret", "--no-broker-check")
    assert handoff(*flags).returncode == 0
    key = tmp_path / "etc" / "reader.key"
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n")
    again = handoff(*flags, "--force")
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1 and "Traceback" not in again.stderr
    assert str(key) in again.stderr and "move it aside" in again.stderr


def test_provision_makes_the_audit_key_so_a_provisioned_cart_always_signs(tmp_path: Path) -> None:
    made = handoff(*base_flags(tmp_path, "--generate-secret", "--no-broker-check"))
    assert made.returncode == 0
    etc = tmp_path / "etc"
    config = load_config(etc / "handoff.toml")
    assert config.audit is not None and config.audit.key_file == etc / "audit.key"
    assert f"appliance key fingerprint: {fingerprint(load_signing_key(etc / 'audit.key'))}" in made.stdout
    assert (mode(etc / "audit.key"), mode(etc / "audit.pub")) == (0o600, 0o644)
    key = load_signing_key(etc / "audit.key")
    assert load_public_keys(etc / "audit.pub", "audit.pub")[0].public_bytes_raw() == key.public_key().public_bytes_raw()
    again = handoff(*base_flags(tmp_path, "--generate-secret", "--no-broker-check", "--force"))
    assert again.returncode == 0, again.stderr
    assert load_signing_key(etc / "audit.key").private_bytes_raw() == key.private_bytes_raw(), "kept across runs"


def test_off_a_pi_provision_picks_no_board_and_the_result_runs_past_the_gpio_check(tmp_path: Path) -> None:
    flags = base_flags(tmp_path, "--generate-secret", "--no-broker-check")
    at = flags.index("--board")
    done = handoff(*flags[:at], *flags[at + 2 :])
    assert done.returncode == 0, done.stderr
    assert 'feedback.board = "none": not a Raspberry Pi' in done.stdout
    config = load_config(tmp_path / "etc" / "handoff.toml")
    assert config.feedback.board == "none"
    assert check_gpio(config).status is Status.PASS


def test_the_pi_is_told_by_its_device_tree_model(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\0")
    assert default_board(model) == "pi-cart-v1"
    model.write_bytes(b"QEMU Virtual Machine\0")
    assert default_board(model) == "none"
    assert default_board(tmp_path / "absent") == "none"


def test_doctor_fails_on_a_pin_map_that_run_refuses(appliance: Layout) -> None:
    """Off a Pi (this machine) a GPIO pin map cannot be driven: doctor and run agree on the line."""
    appliance.configure(feedback={"board": "pi-cart-v1"})
    result = check_gpio(load_config(appliance.config))
    assert result.status is Status.FAIL and 'feedback.board = "pi-cart-v1" needs GPIO' in result.detail
    refused = handoff("run", "-c", appliance.config)
    assert refused.returncode == 2 and 'feedback.board = "pi-cart-v1" needs GPIO' in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
