"""The HDF5 clip store: round trips, validation messages, all-or-nothing writes."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from vidgen.data import FORMAT_NAME, ClipWriter, open_clips, summarize
from vidgen.errors import VidgenError


def _frames(n: int, h: int = 8, w: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_round_trip_frames_actions_states_objects(tmp_path):
    path = tmp_path / "train.h5"
    episodes = [(_frames(5, seed=1), 5), (_frames(7, seed=2), 7)]
    with ClipWriter(path, fps=10, source="test", attrs={"action_names": ["dx", "dy"]}) as w:
        for i, (frames, n) in enumerate(episodes):
            w.add_episode(
                f"ep{i}",
                frames,
                actions=np.arange(n * 2, dtype=np.float32).reshape(n, 2) + i,
                states=np.full((n, 3), i, dtype=np.float32),
                objects={"positions": np.zeros((n, 2, 2))},
            )
    with open_clips(path) as f:
        assert f.attrs["format"] == FORMAT_NAME
        assert list(f["episode_starts"][()]) == [0, 5, 12]
        assert [s.decode() for s in f["episode_names"][()]] == ["ep0", "ep1"]
        np.testing.assert_array_equal(f["frames"][5:12], episodes[1][0])
        np.testing.assert_array_equal(f["actions"][5], [1.0, 2.0])
        assert f["actions"].dtype == np.float32
        assert f["states"][11, 0] == 1.0
        assert f["objects/positions"].shape == (12, 2, 2)
        assert list(f.attrs["action_names"]) == ["dx", "dy"]
    summary = summarize(path)
    assert summary["episodes"] == 2 and summary["frames"] == 12
    assert summary["frame_size"] == [8, 10] and summary["fps"] == 10.0
    assert summary["per_frame"] == {"actions": [2], "states": [3], "objects/positions": [2, 2]}


def test_refuses_to_overwrite_without_force(tmp_path):
    path = tmp_path / "train.h5"
    with ClipWriter(path, fps=10, source="a") as w:
        w.add_episode("a", _frames(3))
    with pytest.raises(VidgenError, match="already exists"):
        ClipWriter(path, fps=10, source="b")
    with ClipWriter(path, fps=10, source="b", force=True) as w:
        w.add_episode("b", _frames(4))
    assert summarize(path)["frames"] == 4


def test_failure_inside_the_block_leaves_nothing(tmp_path):
    path = tmp_path / "train.h5"
    with pytest.raises(RuntimeError), ClipWriter(path, fps=10, source="x") as w:
        w.add_episode("a", _frames(3))
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frames": np.zeros((3, 8, 10), np.uint8)}, "uint8 \\[T, H, W, 3\\]"),
        ({"frames": np.zeros((3, 8, 10, 3), np.float32)}, "uint8 \\[T, H, W, 3\\]"),
        ({"frames": _frames(3), "actions": np.zeros((2, 2))}, "actions has 2 rows"),
        ({"frames": _frames(0)}, "has no frames"),
    ],
)
def test_bad_episodes_are_named_and_leave_nothing(tmp_path, kwargs, message):
    with (
        pytest.raises(VidgenError, match=message),
        ClipWriter(tmp_path / "x.h5", fps=10, source="x") as w,
    ):
        w.add_episode("bad", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_actions_for_some_episodes_only_is_refused(tmp_path):
    with (
        pytest.raises(VidgenError, match="every episode or for none"),
        ClipWriter(tmp_path / "x.h5", fps=10, source="x") as w,
    ):
        w.add_episode("a", _frames(3), actions=np.zeros((3, 2)))
        w.add_episode("b", _frames(3))
    assert list(tmp_path.iterdir()) == []


def test_reader_names_what_is_wrong(tmp_path):
    good = tmp_path / "good.h5"
    with ClipWriter(good, fps=10, source="x") as w:
        w.add_episode("a", _frames(6))
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(VidgenError, match="not a readable HDF5 file"):
        open_clips(truncated)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["X"] = np.zeros((4, 8, 8, 3), np.uint8)
    with pytest.raises(VidgenError, match="not a vidgen clip file"):
        open_clips(foreign)
    with pytest.raises(VidgenError, match="does not exist"):
        open_clips(tmp_path / "missing.h5")
    with h5py.File(good, "a") as f:
        f["episode_starts"][-1] = 5
    with pytest.raises(VidgenError, match="episode_starts must run from 0"):
        open_clips(good)


def test_plain_h5py_file_following_the_readme_is_readable(tmp_path):
    """The format as documented, written without vidgen."""
    path = tmp_path / "mine.h5"
    with h5py.File(path, "w") as f:
        f["frames"] = np.zeros((7, 16, 16, 3), np.uint8)
        f["episode_starts"] = np.array([0, 3, 7], np.int64)
        f["episode_names"] = ["a", "b"]
        f.attrs.update(format="vidgen-clips", format_version=1, fps=10.0)
    assert summarize(path)["episodes"] == 2
