"""Window indexing: `all` and `unique` starts against hand counts."""

from __future__ import annotations

import numpy as np
import pytest

from vidgen.data import window_span, window_starts
from vidgen.errors import VidgenError

# Episodes of 12, 5 and 20 frames, stored back to back.
STARTS = np.array([0, 12, 17, 37])


def test_all_windows_hand_count():
    starts = window_starts(STARTS, length=10)
    # episode 0: starts 0..2 (3), episode 1 too short, episode 2: 17..27 (11)
    assert list(starts) == [0, 1, 2, *range(17, 28)]


def test_unique_windows_hand_count():
    starts = window_starts(STARTS, length=5, mode="unique")
    # 12 -> 0, 5; 5 -> 12; 20 -> 17, 22, 27, 32
    assert list(starts) == [0, 5, 12, 17, 22, 27, 32]


def test_frame_step_spans_and_boundaries():
    assert window_span(4, step=3) == 10
    starts = window_starts(STARTS, length=4, step=3)
    assert list(starts) == [0, 1, 2, *range(17, 28)]
    ends = starts + window_span(4, 3) - 1
    episode_of = np.searchsorted(STARTS, starts, side="right")
    assert np.all(np.searchsorted(STARTS, ends, side="right") == episode_of)


def test_bad_window_arguments():
    with pytest.raises(VidgenError, match="positive"):
        window_starts(STARTS, length=0)
    with pytest.raises(VidgenError, match="window mode"):
        window_starts(STARTS, length=3, mode="random")
