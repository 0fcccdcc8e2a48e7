"""Lights and buzzer on gpiozero's MockFactory: the pin states each cue leaves behind, over time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from handoff.errors import ConfigError
from handoff.feedback.board import Board, load_board, parse_board
from handoff.feedback.cues import PATTERNS, Cue
from handoff.feedback.gpio import GpioLights
from handoff.feedback.output import CueFeedback, NoFeedback, open_feedback
from tests.kit.gpio import mock_pins
from tests.kit.timing import ALONE

pytestmark = ALONE
BOARD = load_board("pi-cart-v1")


@pytest.fixture
def feedback() -> Iterator[tuple[CueFeedback, MockFactory]]:
    with mock_pins() as factory:
        output = CueFeedback([GpioLights(BOARD)])
        yield output, factory
        output.close()


def pin_history(factory: MockFactory, output: str) -> list[bool]:
    states = [bool(s.state) for s in factory.pin(BOARD.pins[output]).states]
    return [state for index, state in enumerate(states) if index == 0 or states[index - 1] != state]


def settle(cue: Cue) -> None:
    time.sleep(sum(frame.seconds for frame in PATTERNS[cue]) + 0.15)


@pytest.mark.parametrize(
    ("cue", "beeps", "lit"),
    [
        (Cue.ACCEPTED, 1, {"green"}),
        (Cue.RETURNED, 1, {"green"}),
        (Cue.HANDOFF, 1, {"green", "amber"}),
        (Cue.REJECTED, 2, {"red"}),
        (Cue.DEVICE_ERROR, 3, {"red"}),
        (Cue.LOCKED, 1, {"amber"}),
        (Cue.IGNORED, 0, {"green"}),
    ],
)
def test_each_cue_beeps_and_lights_as_clinicians_expect(
    feedback: tuple[CueFeedback, MockFactory], cue: Cue, beeps: int, lit: set[str]
) -> None:
    output, factory = feedback
    output.show(cue)
    settle(cue)
    assert pin_history(factory, "buzzer").count(True) == beeps
    for name in ("green", "red", "amber"):
        assert (True in pin_history(factory, name)) == (name in lit), name
        assert not factory.pin(BOARD.pins[name]).state, f"{name} left on after the cue"


def test_accepted_timing(feedback: tuple[CueFeedback, MockFactory]) -> None:
    output, factory = feedback
    started = time.monotonic()
    output.show(Cue.ACCEPTED)
    assert time.monotonic() - started < 0.01, "show() must never block the core"
    settle(Cue.ACCEPTED)
    green = factory.pin(BOARD.pins["green"])
    first_on = next(s.timestamp for s in green.states if s.state)
    buzzer = [(s.timestamp, bool(s.state)) for s in factory.pin(BOARD.pins["buzzer"]).states]
    beep_on = next(t for t, on in buzzer if on)
    beep_off = next(t for t, on in buzzer if not on and t > beep_on)
    assert beep_on - first_on == pytest.approx(0, abs=0.02)
    assert beep_off - beep_on == pytest.approx(0.12, abs=0.05)
    last_off = green.states[-1].timestamp
    assert last_off - first_on == pytest.approx(0.62, abs=0.08)


def test_new_cue_preempts_the_running_one(feedback: tuple[CueFeedback, MockFactory]) -> None:
    output, factory = feedback
    output.show(Cue.ACCEPTED)
    time.sleep(0.2)
    output.show(Cue.REJECTED)
    settle(Cue.REJECTED)
    assert pin_history(factory, "buzzer").count(True) == 3
    assert not factory.pin(BOARD.pins["green"]).state and not factory.pin(BOARD.pins["red"]).state


def test_ambient_state_and_offline_blink(feedback: tuple[CueFeedback, MockFactory]) -> None:
    output, factory = feedback
    output.set_ambient("in_use", online=True)
    time.sleep(0.1)
    assert factory.pin(BOARD.pins["green"]).state and not factory.pin(BOARD.pins["amber"]).state
    output.show(Cue.ACCEPTED)
    settle(Cue.ACCEPTED)
    assert factory.pin(BOARD.pins["green"]).state, "ambient restored after the cue"
    output.set_ambient("in_use", online=False)
    time.sleep(1.6)
    assert pin_history(factory, "amber").count(True) >= 2
    output.set_ambient("locked", online=True)
    time.sleep(0.1)
    assert factory.pin(BOARD.pins["amber"]).state and not factory.pin(BOARD.pins["green"]).state


def test_blocked_outbox_fault_is_red_on_top_of_the_state(feedback: tuple[CueFeedback, MockFactory]) -> None:
    output, factory = feedback
    output.set_ambient("in_use", online=True, fault=True)
    time.sleep(0.1)
    assert factory.pin(BOARD.pins["green"]).state and factory.pin(BOARD.pins["red"]).state
    output.set_ambient("in_use", online=True, fault=False)
    time.sleep(0.1)
    assert factory.pin(BOARD.pins["green"]).state and not factory.pin(BOARD.pins["red"]).state


def test_board_none_needs_no_gpio() -> None:
    assert isinstance(open_feedback("none"), NoFeedback)


def test_unknown_board_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"feedback\.board: no pin map named 'pi-cart-v9'"):
        open_feedback("pi-cart-v9")


@pytest.mark.parametrize(
    ("body", "culprit"),
    [
        ("[pins]\ngreen = 17\nred = 27\namber = 22\n", "pins.buzzer must be a BCM pin"),
        ("[pins]\ngreen = 17\nred = 27\namber = 22\nbuzzer = 40\n", "pins.buzzer must be a BCM pin"),
        ("[pins]\ngreen = 17\nred = 17\namber = 22\nbuzzer = 18\n", "share one pin"),
        ("[pins]\ngreen = 17\nred = 27\namber = 22\nbuzzer = 18\nblue = 5\n", "pins.blue is not a known output"),
        ("colour = 1\n[pins]\n", "colour is not a known key"),
        ('active_high = "yes"\n[pins]\ngreen = 17\nred = 27\namber = 22\nbuzzer = 18\n', "active_high"),
    ],
)
def test_bad_pin_maps_name_file_and_key(tmp_path: Path, body: str, culprit: str) -> None:
    path = tmp_path / "cart.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as caught:
        parse_board(path)
    assert culprit in str(caught.value) and str(path) in str(caught.value)


def test_shipped_board_is_complete() -> None:
    assert isinstance(BOARD, Board) and set(BOARD.pins) == {"green", "red", "amber", "buzzer"}


def test_real_board_without_gpio_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Device, "pin_factory", None)
    with pytest.raises(ConfigError, match='set board = "none"'):
        open_feedback("pi-cart-v1")
