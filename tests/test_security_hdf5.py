"""Hostile clip files: each attack would make a reader read another file or allocate far
more than the file holds. Every reader (``vidgen-prep info``, ClipDataset, the held-out
windows that rollout and compare read, the DataModule) must refuse it in one line.

Each attack is checked to be live first (plain h5py does read the foreign bytes), and a
reader that returns any data writes a sentinel file, which must not exist afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from vidgen.cli.prep import main as prep_main
from vidgen.data import ClipDataset, VideoDataModule, open_clips
from vidgen.data.validation import MAX_FRAME_PIXELS_ENV
from vidgen.errors import VidgenError

SECRET = b"secret-16-bytes!"
N, H, W = 4, 8, 8
FRAME_BYTES = N * H * W * 3


def frames() -> np.ndarray:
    return np.zeros((N, H, W, 3), np.uint8)


def write_clip(path: Path, add_frames: Callable[[h5py.File], None]) -> Path:
    """A clip file that is valid but for what ``add_frames`` puts at ``frames``."""
    with h5py.File(path, "w") as f:
        add_frames(f)
        f["episode_starts"] = np.array([0, N], np.int64)
        f["episode_names"] = ["a"]
        f.attrs.update(format="vidgen-clips", format_version=1, fps=10.0)
    return path


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A foreign file (think /etc/passwd) and an HDF5 file holding its bytes as frames."""
    raw = tmp_path / "secret.bin"
    raw.write_bytes(SECRET * (FRAME_BYTES // len(SECRET)))
    with h5py.File(tmp_path / "secret.h5", "w") as f:
        f["frames"] = np.frombuffer(raw.read_bytes(), np.uint8).reshape(N, H, W, 3)
    return raw


def external_storage(secret: Path) -> Callable[[h5py.File], None]:
    return lambda f: f.create_dataset(
        "frames", (N, H, W, 3), np.uint8, external=[(str(secret), 0, h5py.h5f.UNLIMITED)]
    )


def external_link(secret: Path) -> Callable[[h5py.File], None]:
    def add(f: h5py.File) -> None:
        f["frames"] = h5py.ExternalLink(str(secret.with_suffix(".h5")), "/frames")

    return add


def virtual_dataset(secret: Path) -> Callable[[h5py.File], None]:
    def add(f: h5py.File) -> None:
        layout = h5py.VirtualLayout((N, H, W, 3), np.uint8)
        layout[:] = h5py.VirtualSource(str(secret.with_suffix(".h5")), "frames", (N, H, W, 3))
        f.create_virtual_dataset("frames", layout)

    return add


FOREIGN_READS = {
    "external storage": (external_storage, "external file"),
    "external link": (external_link, "external link"),
    "virtual dataset": (virtual_dataset, "virtual dataset"),
}


def refused_everywhere(
    path: Path, message: str, capsys: pytest.CaptureFixture, sentinel: Path
) -> None:
    """info exits 2 with one line; ClipDataset, held-out windows and the DataModule raise."""
    with pytest.raises(SystemExit) as exit_info:
        prep_main(["info", str(path)])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert SECRET.decode() not in out + err
    root = path.parent
    readers = {
        "ClipDataset": lambda: ClipDataset(path, 2)[0]["frames"],
        "in memory": lambda: ClipDataset(path, 2, in_memory=True)[0]["frames"],
        "held-out windows": lambda: VideoDataModule(root, test_split=path.stem).eval_windows(
            "test", 1, 1
        )[0]["frames"],
        "DataModule": lambda: VideoDataModule(root, length=2, test_split=path.stem).dataset("test")[
            0
        ]["frames"],
    }
    for name, read in readers.items():
        try:
            frames = read()
        except VidgenError as error:
            assert message in str(error), name
        else:
            sentinel.write_bytes(frames.numpy().tobytes())
    assert not sentinel.exists()


@pytest.mark.parametrize("attack", FOREIGN_READS)
def test_datasets_reading_other_files_are_refused(tmp_path, secret, capsys, attack):
    build, message = FOREIGN_READS[attack]
    path = write_clip(tmp_path / "test.h5", build(secret))
    with h5py.File(path, "r") as f:  # the attack is live: plain h5py reads the secret
        assert f["frames"][()].tobytes().startswith(SECRET)
    refused_everywhere(path, message, capsys, tmp_path / "sentinel")


def test_external_links_are_refused_anywhere_in_the_file(tmp_path, secret, capsys):
    """Also inside objects/, and where no reader would look."""
    path = write_clip(tmp_path / "test.h5", lambda f: f.create_dataset("frames", data=frames()))
    with h5py.File(path, "a") as f:
        f["objects/positions"] = h5py.ExternalLink(str(secret.with_suffix(".h5")), "/frames")
    refused_everywhere(path, "external link", capsys, tmp_path / "sentinel")
    with h5py.File(path, "a") as f:
        del f["objects"]
        f["unread/deep"] = h5py.ExternalLink(str(secret.with_suffix(".h5")), "/frames")
    refused_everywhere(path, "external link", capsys, tmp_path / "sentinel")


def test_external_storage_in_a_per_frame_dataset_is_refused(tmp_path, secret, capsys):
    path = write_clip(tmp_path / "test.h5", lambda f: f.create_dataset("frames", data=frames()))
    with h5py.File(path, "a") as f:
        f.create_dataset(
            "objects/positions", (N, 4), np.float32, external=[(str(secret), 0, N * 16)]
        )
    refused_everywhere(path, "external file", capsys, tmp_path / "sentinel")


def test_a_6_kb_file_declaring_27_gb_is_refused_before_allocating(tmp_path, capsys):
    path = tmp_path / "test.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("frames", (20, 30000, 30000, 3), np.uint8, chunks=(1, 64, 64, 3))
        f["episode_starts"] = np.array([0, 20], np.int64)
        f["episode_names"] = ["a"]
        f.attrs.update(format="vidgen-clips", format_version=1, fps=10.0)
    assert path.stat().st_size < 10_000
    refused_everywhere(path, "exceed the limit of 16777216 pixels", capsys, tmp_path / "sentinel")


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_sparse_frames_within_the_size_limit_are_refused(tmp_path, capsys, compression):
    """200,000 frames of 64x64 (2.4 GB) declared, none stored."""
    path = tmp_path / "test.h5"
    with h5py.File(path, "w") as f:
        shape, chunks = (200_000, 64, 64, 3), (10, 64, 64, 3)
        f.create_dataset("frames", shape, np.uint8, chunks=chunks, compression=compression)
        f["episode_starts"] = np.array([0, 200_000], np.int64)
        f["episode_names"] = ["a"]
        f.attrs.update(format="vidgen-clips", format_version=1, fps=10.0)
    refused_everywhere(path, "declares 2,457,600,000 bytes", capsys, tmp_path / "sentinel")


def test_sparse_episode_starts_is_refused_before_it_is_read(tmp_path, capsys):
    """episode_starts is read whole: 8 GB of it declared must not be allocated."""
    path = write_clip(tmp_path / "test.h5", lambda f: f.create_dataset("frames", data=frames()))
    with h5py.File(path, "a") as f:
        del f["episode_starts"]
        f.create_dataset("episode_starts", (10**9,), np.int64, chunks=(1024,))
    message = "episode_starts has more entries than there are frames"
    refused_everywhere(path, message, capsys, tmp_path / "sentinel")


def test_frame_size_limit_is_overridable(tmp_path, monkeypatch):
    path = write_clip(tmp_path / "test.h5", lambda f: f.create_dataset("frames", data=frames()))
    monkeypatch.setenv(MAX_FRAME_PIXELS_ENV, str(H * W - 1))
    with pytest.raises(VidgenError, match=f"exceed the limit of {H * W - 1} pixels"):
        open_clips(path)
    open_clips(path, max_frame_pixels=H * W).close()
    monkeypatch.setenv(MAX_FRAME_PIXELS_ENV, str(H * W))
    assert len(ClipDataset(path, 2)) == 3
    monkeypatch.setenv(MAX_FRAME_PIXELS_ENV, "lots")
    with pytest.raises(VidgenError, match=f"{MAX_FRAME_PIXELS_ENV}='lots' must be a positive"):
        open_clips(path)


WRONG_KINDS = {
    "frames is a group": (
        lambda f: f.move("frames", "data") or f.create_group("frames"),
        "'frames' must be a dataset, not a Group",
    ),
    "objects is a dataset": (
        lambda f: f.create_dataset("objects", data=np.zeros((N, 2))),
        "'objects' must be a group",
    ),
    "an object track is a group": (
        lambda f: f.create_group("objects/positions"),
        "'objects/positions' must be a dataset",
    ),
    "a soft link": (
        lambda f: f.__setitem__("objects/positions", h5py.SoftLink("/frames")),
        "'objects/positions' is a soft link",
    ),
}


@pytest.mark.parametrize("case", WRONG_KINDS)
def test_wrong_kinds_of_objects_are_named(tmp_path, capsys, case):
    tamper, message = WRONG_KINDS[case]
    path = write_clip(tmp_path / "test.h5", lambda f: f.create_dataset("frames", data=frames()))
    with h5py.File(path, "a") as f:
        tamper(f)
    refused_everywhere(path, message, capsys, tmp_path / "sentinel")


def test_a_compressed_dataset_with_missing_chunks_is_refused(tmp_path):
    """A gzip track that stores a few bytes of its 160 MB: sparse, whatever the ratio."""
    path = write_clip(tmp_path / "test.h5", lambda f: f.create_dataset("frames", data=frames()))
    with h5py.File(path, "a") as f:
        track = f.create_dataset(
            "objects/x", shape=(N, 100_000, 2), dtype="f4", chunks=(1, 100_000, 2),
            compression="gzip",
        )  # fmt: skip
        track[0] = 1.0  # one chunk stored, the rest unallocated
    with pytest.raises(VidgenError, match="'objects/x' declares .* sparse or forged"):
        open_clips(path).close()
