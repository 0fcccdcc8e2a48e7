"""The hand-rolled wire formats against the standard library's own reading of them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from handoff.cloudevents import uuid7
from handoff.timefmt import rfc3339

EPOCHS = st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False)  # up to 2100


@given(EPOCHS)
def test_rfc3339_is_utc_with_milliseconds_never_ahead_of_the_moment(epoch: float) -> None:
    text = rfc3339(epoch)
    assert len(text) == 24 and text.endswith("Z")
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    assert epoch - 0.001 <= parsed <= epoch + 1e-6


def test_rfc3339_of_known_moments() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1_700_000_000.1239) == "2023-11-14T22:13:20.123Z"
    assert rfc3339(951_782_399.9999) == "2000-02-28T23:59:59.999Z"
    assert rfc3339(datetime(2024, 2, 29, 12, 0, tzinfo=UTC).timestamp()) == "2024-02-29T12:00:00.000Z"


@given(EPOCHS)
def test_uuid7_is_a_version_7_uuid_carrying_its_millisecond(epoch: float) -> None:
    text = uuid7(epoch)
    value = uuid.UUID(text)
    assert str(value) == text
    assert value.version == 7 and value.variant == uuid.RFC_4122
    assert value.int >> 80 == int(epoch * 1000)


def test_uuid7_ids_are_distinct_within_one_millisecond() -> None:
    ids = {uuid7(1_700_000_000.0) for _ in range(10_000)}
    assert len(ids) == 10_000
