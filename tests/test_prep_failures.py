"""Data preparation that fails loses nothing and says why in one line: bad attributes, a
folder given for a file, impossible split fractions, mixed frame sizes, a truncated video,
a full disk, SIGTERM and SIGINT; a ``--force`` rewrite replaces the whole dataset, splits
of different conversions are refused together, and a file rewritten under a reader is
detected."""

from __future__ import annotations

import errno
import io
import os
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av
import h5py
import numpy as np
import pytest

from data_prep.synthetic import generate_dataset
from fixtures_sources import kitti_drive, kitti_frames, write_kitti_folder
from test_prep_cli import colour_frames, fails_with, run_prep, write_png_folder
from vidgen.data import ClipDataset, VideoDataModule, store, summarize
from vidgen.errors import VidgenError

REPO = Path(__file__).resolve().parents[1]


def write_plain(path: Path) -> Path:
    """A valid clip file written with plain h5py, as README shows (it has no dataset id)."""
    with h5py.File(path, "w") as f:
        f["frames"] = colour_frames(6, 8, 8)
        f["episode_starts"] = np.array([0, 3, 6], np.int64)
        f["episode_names"] = ["a", "b"]
        f.attrs.update(format="vidgen-clips", format_version=1, fps=10.0)
    return path


def set_attr(name: str, value: object) -> Callable[[h5py.File], None]:
    return lambda f: f.attrs.__setitem__(name, value)


def replace_starts(make: Callable[[h5py.File], None]) -> Callable[[h5py.File], None]:
    return lambda f: (f.__delitem__("episode_starts"), make(f))


BAD_ATTRIBUTES = {
    "no fps": (lambda f: f.attrs.__delitem__("fps"), "lacks the fps attribute"),
    "string fps": (set_attr("fps", "ten"), "fps must be a positive finite number, got 'ten'"),
    "zero fps": (set_attr("fps", 0.0), "fps must be a positive finite number, got 0.0"),
    "nan fps": (set_attr("fps", np.nan), "fps must be a positive finite number, got nan"),
    "infinite fps": (set_attr("fps", np.inf), "fps must be a positive finite number, got inf"),
    "string version": (
        set_attr("format_version", "1"),
        "format_version must be a positive integer, got '1'",
    ),
    "fractional version": (
        set_attr("format_version", 1.5),
        "format_version must be a positive integer, got 1.5",
    ),
    "episode_starts a group": (
        replace_starts(lambda f: f.create_group("episode_starts")),
        "'episode_starts' must be a dataset, not a Group",
    ),
    "float episode_starts": (
        replace_starts(lambda f: f.create_dataset("episode_starts", data=[0.0, 3.0, 6.0])),
        "episode_starts must be a 1-D integer dataset, got float64",
    ),
}


@pytest.mark.parametrize("case", BAD_ATTRIBUTES)
def test_info_names_a_bad_attribute_or_dataset(tmp_path, capsys, case):
    tamper, message = BAD_ATTRIBUTES[case]
    path = write_plain(tmp_path / "train.h5")
    assert run_prep("info", path) == 0
    capsys.readouterr()
    with h5py.File(path, "a") as f:
        tamper(f)
    fails_with(capsys, message, "info", path)


def test_info_on_a_folder_suggests_a_file_inside(tmp_path, capsys):
    write_plain(tmp_path / "val.h5")
    fails_with(capsys, f"{tmp_path} is a folder; pass a split file inside it, e.g. "
               f"{tmp_path / 'val.h5'}.", "info", tmp_path)  # fmt: skip


def test_video_inputs_that_cannot_work_are_named(tmp_path, capsys):
    out = tmp_path / "out"
    write_png_folder(tmp_path / "clip", colour_frames(4, 16, 16))
    fails_with(capsys, "--val-frac 0.7 and --test-frac 0.6 add up to 1.3", "video",
               tmp_path / "clip", "--out", out, "--val-frac", 0.7, "--test-frac", 0.6)  # fmt: skip
    write_png_folder(tmp_path / "mixed", colour_frames(3, 16, 16))
    write_png_folder(tmp_path / "mixed/more", colour_frames(1, 16, 20))
    shutil.move(tmp_path / "mixed/more/0000.png", tmp_path / "mixed/0001b.png")
    fails_with(capsys, f"{tmp_path / 'mixed/0001b.png'} is 16x20 but 0000.png is 16x16", "video",
               tmp_path / "mixed", "--out", out, "--size", "8x8")  # fmt: skip
    assert not out.exists()


def write_faststart_mp4(path: Path, frames: np.ndarray, fps: int = 20) -> None:
    """An MPEG-4 file with its index first, as streaming encoders write it, so that a
    truncated copy still opens and decodes up to where it was cut."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def test_truncated_video_is_refused_or_skipped(tmp_path, capsys):
    for name in ("good_a", "good_b", "cut"):
        write_faststart_mp4(tmp_path / f"{name}.mp4", colour_frames(60, 32, 32))
    whole = (tmp_path / "cut.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(whole[: len(whole) * 55 // 100])
    out = tmp_path / "out"
    fails_with(capsys, "of the 60 frames its container declares; it is truncated or corrupt",
               "video", tmp_path / "cut.mp4", "--out", out)  # fmt: skip
    assert not out.exists()
    inputs = [tmp_path / f"{name}.mp4" for name in ("good_a", "good_b", "cut")]
    assert run_prep("video", *inputs, "--out", out, "--skip-bad") == 0
    err = capsys.readouterr().err
    assert "skipped 1 bad item(s)" in err and f"{tmp_path / 'cut.mp4'} decoded to" in err
    assert summarize(out / "train.h5")["episodes"] == 2
    assert summarize(out / "train.h5")["frames"] == 120


def dataset_ids(out: Path) -> dict[str, str]:
    ids = {}
    for path in sorted(out.glob("*.h5")):
        with h5py.File(path, "r") as f:
            ids[path.name] = f.attrs["dataset_id"]
    return ids


def test_force_replaces_every_split_of_the_old_dataset(tmp_path):
    out, other = tmp_path / "out", tmp_path / "other"
    generate_dataset(out, episodes=3, frames=4, size=8)
    generate_dataset(other, episodes=3, frames=4, size=8)
    old = dataset_ids(out)
    assert list(old) == ["test.h5", "train.h5", "val.h5"] and len(set(old.values())) == 1
    assert set(old.values()) != set(dataset_ids(other).values())
    shutil.copy(other / "test.h5", out / "test_seen.h5")  # as the push data has
    write_png_folder(tmp_path / "clip", colour_frames(5, 8, 8))
    run_prep("video", tmp_path / "clip", "--out", out, "--force",
             "--val-frac", 0, "--test-frac", 0)  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["train.h5"]
    assert dataset_ids(out)["train.h5"] not in old.values()


def test_datamodule_refuses_splits_of_different_conversions(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    generate_dataset(first, episodes=3, frames=4, size=8, seed=0)
    generate_dataset(second, episodes=3, frames=4, size=8, seed=1)
    VideoDataModule(first, length=2).setup("fit")
    shutil.copy(second / "val.h5", first / "val.h5")
    with pytest.raises(VidgenError) as error:
        VideoDataModule(first, length=2).setup("fit")
    message = str(error.value)
    assert f"{first / 'train.h5'} and {first / 'val.h5'} come from different conversions" in (
        message
    )
    write_plain(first / "val.h5")  # a file without an id goes with any dataset
    VideoDataModule(first, length=2).setup("fit")


def test_a_file_rewritten_under_a_reader_is_detected(tmp_path):
    out = tmp_path / "out"
    generate_dataset(out, episodes=3, frames=6, size=8, seed=0)
    dataset = ClipDataset(out / "train.h5", 2)
    in_worker = pickle.loads(pickle.dumps(dataset))  # as a DataLoader worker receives it
    assert in_worker[0]["frames"].shape == (2, 8, 8, 3)
    generate_dataset(out, episodes=3, frames=6, size=8, seed=1, force=True)
    for reader in (dataset, pickle.loads(pickle.dumps(dataset))):  # main process, worker
        with pytest.raises(VidgenError, match="was rewritten since it was indexed; restart"):
            reader[0]
    fresh = ClipDataset(out / "train.h5", 2)
    with h5py.File(out / "train.h5", "a") as f:  # edited in place: same inode
        f.attrs["note"] = "edited"
    with pytest.raises(VidgenError, match=f"{out / 'train.h5'} was rewritten"):
        pickle.loads(pickle.dumps(fresh))[0]


class FullDisk(io.FileIO):
    """A disk with ``room`` bytes left; a write beyond them raises ``raises``."""

    room = 20_000
    raises: BaseException = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def write(self, data: bytes) -> int:
        if self.tell() + len(memoryview(data).cast("B")) > self.room:
            raise self.raises
        return super().write(data)


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), "no space left on device writing"),
        (OSError(errno.EIO, os.strerror(errno.EIO)), "cannot write"),
    ],
)
def test_a_failed_write_is_one_error_and_leaves_nothing(tmp_path, monkeypatch, failure, message):
    """HDF5 writes through the guarded file; here its writes fail once 20 KB are written."""

    class Guarded(store._GuardedFile, FullDisk):  # FullDisk's write below the guard's
        pass

    monkeypatch.setattr(FullDisk, "raises", failure)
    monkeypatch.setattr(store, "_GuardedFile", Guarded)
    out = tmp_path / "out"
    with pytest.raises(VidgenError) as error:
        generate_dataset(out, episodes=10, frames=20, size=64)
    assert str(error.value).startswith(f"{message} {out / 'train.h5'}")
    assert not out.exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_an_hdf5_write_stops_the_run_once_hdf5_returns(
    tmp_path, monkeypatch, signum
):
    """h5py swallows an exception raised inside its write callback, so a stop handled
    there would be lost and the run would go on: the handler must run after the write."""
    events = []

    class SignalledMidWrite(store._GuardedFile):
        def write(self, data: bytes) -> int:
            if not events:
                events.append("write")
                signal.raise_signal(signum)
                events.append("write returns")
            return super().write(data)

    def stop(signum, frame):
        events.append("handler")
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "_GuardedFile", SignalledMidWrite)
    previous = signal.signal(signum, stop)
    out = tmp_path / "out"
    try:
        with pytest.raises(KeyboardInterrupt):
            generate_dataset(out, episodes=10, frames=20, size=64)
    finally:
        signal.signal(signum, previous)
    assert events == ["write", "write returns", "handler"]
    assert not out.exists()


# ------------------------------------------------ failures of the whole process


def start_prep(*args: object, file_size_limit: int | None = None) -> subprocess.Popen:
    """``vidgen-prep ARGS`` in a child process, optionally unable to write files beyond
    ``file_size_limit`` bytes (writes then fail with EFBIG, as on a full disk)."""

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write, don't kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.Popen(
        [sys.executable, "-m", "vidgen.cli.prep", *map(str, args)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        preexec_fn=limit_file_size if file_size_limit else None,
    )


def finish(process: subprocess.Popen, timeout: float = 120) -> str:
    """stderr of the finished process (killed if it hangs)."""
    try:
        return process.communicate(timeout=timeout)[1]
    finally:
        process.kill()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def kitti_args(tmp_path: Path) -> list[object]:
    """KITTI decoded by two processes: train.h5 (12 frames of 128x160) holds 700 KB."""
    raw = tmp_path / "raw"
    # train, val and test drives; 6 distinct frames a drive, train's twice over
    for number, repeats in ((1, 2), (5, 1), (70, 1)):
        drive = kitti_drive(number)
        write_kitti_folder(raw, drive, kitti_frames(drive, 6) * repeats)
    return ["kitti", "--raw", raw, "--workers", 2]


def synthetic_args(tmp_path: Path) -> list[object]:
    """Bouncing balls: train.h5 (8 episodes of 20 frames of 64x64) holds about 200 KB."""
    return ["synthetic", "--episodes", 10, "--frames", 20, "--size", 64]


@pytest.mark.parametrize(
    "source", [synthetic_args, pytest.param(kitti_args, marks=pytest.mark.slow)]
)
def test_disk_full_gives_one_line_and_keeps_the_old_dataset(tmp_path, source):
    """A --force rewrite whose train.h5 outgrows the 50 KB a file may have."""
    out = tmp_path / "out"
    generate_dataset(out, episodes=3, frames=4, size=8)
    before = snapshot(out)
    process = start_prep(*source(tmp_path), "--out", out, "--force", file_size_limit=50_000)
    err = finish(process)
    assert process.returncode == 2
    assert err.strip().splitlines() == [
        f"error: no space left on device writing {out / 'train.h5'} (File too large); free "
        "some space and run again."
    ]
    assert snapshot(out) == before  # no partial file, the old dataset intact


@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)]
)
def test_a_stopped_run_leaves_nothing(tmp_path, signum):
    out = tmp_path / "out"
    process = start_prep("synthetic", "--out", out, "--episodes", 100_000, "--frames", 10)
    deadline = time.monotonic() + 120
    while not list(out.glob(".*.partial")):  # stop it in the middle of writing
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signum)
    err = finish(process, timeout=60)
    assert process.returncode == 130
    assert err.strip().splitlines() == ["interrupted; nothing partial was left behind."]
    assert not out.exists()
