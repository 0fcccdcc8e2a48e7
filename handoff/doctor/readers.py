"""Checks of the configured badge readers: nfcpy paths open, pcscd lists the PC/SC ones."""

from __future__ import annotations

import nfc
from smartcard.Exceptions import SmartcardException
from smartcard.pcsc.PCSCExceptions import BaseSCardException
from smartcard.System import readers

from handoff.config import Config
from handoff.doctor.result import CheckResult, failed, passed, skipped


def check_nfc_readers(config: Config) -> list[CheckResult]:
    results = []
    for reader in (r for r in config.readers if r.kind == "nfc"):
        name = f"nfc reader {reader.path}"
        try:
            frontend = nfc.ContactlessFrontend()
            opened = frontend.open(reader.path)
            frontend.close()
        except Exception as exc:
            opened, detail = False, str(exc)
        else:
            detail = "nothing found there"
        if opened:
            results.append(passed(name, "opens"))
        else:
            results.append(
                failed(
                    name,
                    f"cannot open ({detail}); plug the reader in, check udev permission, "
                    "and that handoff run is not holding it",
                )
            )
    return results or [skipped("nfc readers", "no nfc reader configured")]


def check_pcsc_readers(config: Config) -> list[CheckResult]:
    wanted = [r for r in config.readers if r.kind == "pcsc"]
    if not wanted:
        return [skipped("pcscd", "no pcsc reader configured")]
    try:
        present = [str(r) for r in readers()]
    except (BaseSCardException, SmartcardException) as exc:
        return [failed("pcscd", f"not reachable ({exc}); run: sudo systemctl enable --now pcscd")]
    results = [passed("pcscd", f"running, {len(present)} reader(s): {', '.join(present) or 'none'}")]
    for reader in wanted:
        label = f"pcsc reader {reader.name!r}" if reader.name else "pcsc reader (any)"
        if any(reader.name in p for p in present):
            results.append(passed(label, "present"))
        else:
            results.append(failed(label, "no PC/SC reader name contains it; plug it in or fix readers.name"))
    return results
