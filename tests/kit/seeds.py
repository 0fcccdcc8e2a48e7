"""Random choices a failure can be replayed from: every seed is printed, and can be given back."""

from __future__ import annotations

import os
import random

SEED_VARIABLE = "HANDOFF_TEST_SEED"


def seeded_random() -> random.Random:
    """A generator seeded from $HANDOFF_TEST_SEED when set, else at random; the seed is printed,
    so pytest shows it beside a failure."""
    seed = int(os.environ.get(SEED_VARIABLE) or int.from_bytes(os.urandom(4), "big"))
    print(f"random seed {seed} ({SEED_VARIABLE}={seed} repeats it)")
    return random.Random(seed)
