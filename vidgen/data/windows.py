"""Window sampling: T frames (every k-th) inside one episode, never across a boundary.

``all`` gives every valid start (overlapping windows, for training); ``unique`` walks each
episode forward and takes non-overlapping windows (for evaluation), as PredNet's
SequenceGenerator does.
"""

from __future__ import annotations

import numpy as np

from vidgen.errors import VidgenError

WINDOW_MODES = ("all", "unique")


def window_span(length: int, step: int = 1) -> int:
    """Frames covered from the first to the last frame of a window, inclusive."""
    return (length - 1) * step + 1


def longest_window(episode_starts: np.ndarray, step: int = 1) -> int:
    """The most frames a window taken every ``step`` frames holds inside the longest episode:
    the largest ``length`` whose ``window_span`` fits it (0 without episodes)."""
    longest = int(np.diff(episode_starts).max(initial=0))
    return (longest - 1) // step + 1 if longest else 0


def window_starts(
    episode_starts: np.ndarray, length: int, step: int = 1, mode: str = "all"
) -> np.ndarray:
    """Global start indices of every window of ``length`` frames taken every ``step`` frames."""
    if length < 1 or step < 1:
        raise VidgenError(f"window length and step must be positive, got {length} and {step}.")
    if mode not in WINDOW_MODES:
        raise VidgenError(f"window mode must be one of {WINDOW_MODES}, got {mode!r}.")
    span = window_span(length, step)
    stride = 1 if mode == "all" else span
    starts = [
        np.arange(first, last - span + 1, stride, dtype=np.int64)
        for first, last in zip(episode_starts[:-1], episode_starts[1:], strict=True)
    ]
    return np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
