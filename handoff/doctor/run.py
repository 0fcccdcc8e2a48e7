"""All checks in the order a biomed engineer would fix them: config first, broker last."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from handoff.doctor.broker import check_broker, check_client_cert, check_protocol, utc_now
from handoff.doctor.local import (
    check_audit,
    check_commands,
    check_config,
    check_database,
    check_disk,
    check_outbox,
    check_secret,
    check_seq_history,
)
from handoff.doctor.readers import (
    check_keyboard_readers,
    check_nfc_readers,
    check_osdp_readers,
    check_pcsc_readers,
    check_reader_list,
)
from handoff.doctor.result import CheckResult, Status, skipped
from handoff.doctor.system import PROC_MODULES, check_clock, check_gpio, check_nfc_kernel_modules
from handoff.doctor.topics import check_topics


def run_checks(
    config_path: Path, proc_modules: Path = PROC_MODULES, broker_timeout: float = 5.0
) -> Iterator[CheckResult]:
    """Yield results as they come, so a slow broker check does not hide the quick ones."""
    result, config = check_config(config_path)
    yield result
    if config is None:
        yield skipped("other checks", "they need a valid config")
        return
    yield check_secret(config)
    yield check_commands(config)
    yield check_audit(config)
    yield check_database(config)
    yield check_seq_history(config)
    yield check_outbox(config)
    yield check_disk(config)
    yield check_nfc_kernel_modules(config, proc_modules)
    yield check_reader_list(config)
    yield from check_nfc_readers(config)
    yield from check_pcsc_readers(config)
    yield from check_keyboard_readers(config)
    yield from check_osdp_readers(config)
    broker = check_broker(config.mqtt, broker_timeout)
    yield broker
    if broker.status is Status.FAIL:
        yield skipped("broker protocol", "the broker cannot be reached (see above)")
    else:
        yield check_protocol(config.mqtt, broker_timeout)
        yield check_topics(config, broker_timeout)
    yield check_client_cert(config.mqtt, utc_now())
    yield check_clock()
    yield check_gpio(config)
