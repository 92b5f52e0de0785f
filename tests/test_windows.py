"""Window indexing: `all` and `unique` starts, and the held-out windows, against hand counts."""

from __future__ import annotations

import numpy as np
import pytest

from vidgen.data import ClipWriter, VideoDataModule, window_span, window_starts
from vidgen.data.windows import longest_window
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


def test_longest_window_inverts_the_span():
    assert longest_window(STARTS) == 20
    assert longest_window(STARTS, step=3) == 7  # span 19 fits the 20 frames, span 22 does not
    assert window_span(7, 3) <= 20 < window_span(8, 3)
    assert longest_window(np.array([0])) == 0


@pytest.fixture
def numbered(tmp_path):
    """A test split whose episodes are STARTS' (12, 5, 20 frames); frame i holds the value i."""
    with ClipWriter(tmp_path / "test.h5", fps=10, source="test") as writer:
        for first, last in zip(STARTS[:-1], STARTS[1:], strict=True):
            values = np.arange(first, last, dtype=np.uint8)[:, None, None, None]
            writer.add_episode(f"e{first}", np.broadcast_to(values, (last - first, 4, 4, 3)))
    return tmp_path


def first_values(frames):
    """The frame numbers of a model batch's [B, T, 3, H, W] frames."""
    return (frames[:, :, 0, 0, 0] * 255).round().long().tolist()


@pytest.mark.parametrize(
    ("step", "context", "horizon", "first", "last", "count"),
    [
        # length 5, span 5: 12 -> 0, 5; 5 -> 12; 20 -> 17, 22, 27, 32
        (1, 3, 2, [0, 1, 2, 3, 4], [32, 33, 34, 35, 36], 7),
        # length 5 every 2nd, span 9: 12 -> 0; 5 -> none; 20 -> 17, 26
        (2, 2, 3, [0, 2, 4, 6, 8], [26, 28, 30, 32, 34], 3),
    ],
)
def test_eval_windows_hand_count(numbered, step, context, horizon, first, last, count):
    windows = VideoDataModule(numbered, step=step).eval_windows("test", context, horizon)
    assert len(windows) == count and windows.length == context + horizon
    batch = windows.batch([0, count - 1])
    assert first_values(batch["frames"]) == [first, last]


def test_eval_windows_past_the_data(numbered):
    datamodule = VideoDataModule(numbered)
    with pytest.raises(VidgenError, match="needs clips of 33 frames; the longest .* has 20"):
        datamodule.eval_windows("test", 3, 30)
    with pytest.raises(VidgenError, match="context=21 is longer than the clips"):
        datamodule.eval_windows("test", 21, 1, horizon_past_data=True)
    with pytest.raises(VidgenError, match="horizon must be at least 1 frame"):
        datamodule.eval_windows("test", 3, 0)
    windows = datamodule.eval_windows("test", 3, 30, horizon_past_data=True)
    # cut to the longest episode: one window, frames 17..36
    assert len(windows) == 1 and windows.length == 20
    assert first_values(windows.batch([0])["frames"]) == [list(range(17, 37))]
