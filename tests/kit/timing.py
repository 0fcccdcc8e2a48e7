"""Tests that hold a device to its timing run after the parallel run, one at a time.

A cue's LED and buzzer steps are checked to within tens of milliseconds (tests/test_feedback.py,
the OSDP reader's LED and buzzer); with four workers on two cores, a step can be stretched past
that by the others' work, not by the product's.
"""

import pytest

ALONE = pytest.mark.alone
