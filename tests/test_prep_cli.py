"""vidgen-prep: synthetic, video and info subcommands, and every bad input's message."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vidgen.cli.prep import main
from vidgen.data import open_clips, summarize


def run_prep(*args: str) -> int:
    return main([str(a) for a in args])


def fails_with(capsys: pytest.CaptureFixture, message: str, *args: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_prep(*args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def colour_frames(n: int, h: int, w: int) -> np.ndarray:
    """RGB frames whose red channel counts the frame and whose left half is green."""
    frames = np.zeros((n, h, w, 3), np.uint8)
    frames[..., 0] = (np.arange(n) * 20 % 256)[:, None, None]
    frames[:, :, : w // 2, 1] = 200
    return frames


def write_mp4(path: Path, frames: np.ndarray, fps: float = 20.0) -> None:
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def write_png_folder(path: Path, frames: np.ndarray) -> None:
    path.mkdir()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(path / f"{i:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def test_synthetic_and_info(tmp_path, capsys):
    out = tmp_path / "bb"
    assert run_prep("synthetic", "--out", out, "--episodes", 5, "--frames", 6, "--size", 16) == 0
    assert summarize(out / "train.h5")["episodes"] == 3
    assert run_prep("info", out / "test.h5") == 0
    assert "episodes" in capsys.readouterr().out


def test_video_single_file_splits_in_time(tmp_path):
    frames = colour_frames(40, 48, 64)
    write_mp4(tmp_path / "clip.mp4", frames)
    out = tmp_path / "ds"
    run_prep("video", tmp_path / "clip.mp4", "--out", out, "--size", "32x32")
    counts = {s: summarize(out / f"{s}.h5")["frames"] for s in ("train", "val", "test")}
    assert counts == {"train": 32, "val": 4, "test": 4}
    with open_clips(out / "test.h5") as f:
        assert f.attrs["fps"] == 20.0
        test_frames = f["frames"][()]
    # The test split is the end of the video: its red channel continues from frame 36.
    assert abs(int(test_frames[0, 16, 16, 0]) - 36 * 20 % 256) <= 6
    # RGB order, and the centre crop keeps the green left part left (64 -> 42.7 wide, crop 32).
    assert test_frames[0, 16, 2, 1] > 150 and test_frames[0, 16, 30, 1] < 50


def test_video_png_folders_split_by_video_and_resample(tmp_path):
    for name in ("a", "b", "c", "d"):
        write_png_folder(tmp_path / name, colour_frames(10, 24, 24))
    out = tmp_path / "ds"
    run_prep(
        "video", *(tmp_path / n for n in "abcd"), "--out", out,
        "--folder-fps", 10, "--fps", 5, "--val-frac", 0.25, "--test-frac", 0.25,
    )  # fmt: skip
    for split, names in {"train": ["a", "b"], "val": ["c"], "test": ["d"]}.items():
        with open_clips(out / f"{split}.h5") as f:
            assert [n.decode() for n in f["episode_names"][()]] == names
            assert f.attrs["fps"] == 5.0
            # every second frame survives: red channel 0, 40, 80, ...
            np.testing.assert_array_equal(f["frames"][:5, 0, 0, 0], [0, 40, 80, 120, 160])


def test_bad_inputs_give_one_line_and_leave_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    fails_with(capsys, "does not exist", "video", tmp_path / "missing.mp4", "--out", out)
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    fails_with(capsys, "cannot be decoded as a video", "video", tmp_path / "noise.mp4",
               "--out", out)  # fmt: skip
    (tmp_path / "empty").mkdir()
    fails_with(capsys, "holds no PNG or JPG frames", "video", tmp_path / "empty", "--out", out)
    write_mp4(tmp_path / "ok.mp4", colour_frames(10, 16, 16))
    fails_with(capsys, "size must be HxW", "video", tmp_path / "ok.mp4", "--out", out,
               "--size", "0x16")  # fmt: skip
    fails_with(capsys, "size must be HxW", "synthetic", "--out", out, "--size", "-4")
    fails_with(capsys, "frames must be positive", "synthetic", "--out", out, "--frames", 0)
    assert not out.exists()

    run_prep("synthetic", "--out", out, "--episodes", 3, "--frames", 4, "--size", 8)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    fails_with(capsys, "already holds a dataset", "synthetic", "--out", out)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before

    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes((out / "train.h5").read_bytes()[:2000])
    fails_with(capsys, "not a readable HDF5 file", "info", truncated)
    fails_with(capsys, "does not exist", "info", tmp_path / "nope.h5")
