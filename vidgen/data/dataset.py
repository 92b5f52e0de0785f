"""A map-style Dataset of windows from one clip file.

The HDF5 file is opened lazily, once per process: h5py handles survive neither pickling
(``spawn``, ``ddp_spawn``) nor ``fork`` reliably. Each open checks that the file is still
the one that was indexed (dataset id, inode, modification time, size): windows indexed in
one version of a file would cross episode boundaries in a rewrite of it. Items stay uint8
and channels-last so workers move 4x fewer bytes; ``to_model_batch`` makes the float
[B, T, C, H, W] batch on the device, and ``ClipDataset.batch`` reads one outside a loader.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset, default_collate, get_worker_info

from vidgen.data.store import DEFAULT_CHUNK_CACHE, PER_FRAME_KEYS, file_identity, open_clips
from vidgen.data.windows import window_span, window_starts
from vidgen.errors import VidgenError


class ClipDataset(Dataset):
    """Windows of ``length`` frames, every ``step``-th, from ``path``.

    Each item is a dict: ``frames`` uint8 [T, H, W, 3], plus ``actions``/``states``
    float32 [T, A] and ``objects/<name>`` when the file has them, and ``index``.
    ``in_memory=True`` reads the whole file once, for small datasets and fast tests.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        length: int,
        step: int = 1,
        mode: str = "all",
        in_memory: bool = False,
        max_windows: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.length, self.step = length, step
        with open_clips(self.path) as f:
            self.identity = file_identity(self.path, f)
            self.starts = window_starts(f["episode_starts"][()], length, step, mode)
            self.frame_shape: tuple[int, int, int] = tuple(f["frames"].shape[1:])  # H W 3
            self.fps = float(f.attrs["fps"])
            self.keys = ["frames"] + [k for k in PER_FRAME_KEYS if k in f]
            self.keys += [f"objects/{k}" for k in f.get("objects", {})]
            self._arrays = {k: f[k][()] for k in self.keys} if in_memory else None
            self.compressed = f["frames"].compression is not None
            self._chunk_cache = DEFAULT_CHUNK_CACHE if self.compressed else 0
        if max_windows is not None:
            self.starts = self.starts[:max_windows]
        if len(self.starts) == 0:
            raise VidgenError(
                f"{self.path} has no episode of at least {window_span(length, step)} frames "
                f"(windows of {length} frames every {step})."
            )
        self._file: h5py.File | None = None
        self._handles: dict[str, h5py.Dataset] = {}
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def dataset_id(self) -> str | None:
        """The id shared by the splits of one conversion; None for files written without."""
        return self.identity[0]

    def _source(self) -> dict[str, np.ndarray] | dict[str, h5py.Dataset]:
        if self._arrays is not None:
            return self._arrays
        if self._file is None or self._pid != os.getpid():
            f = open_clips(self.path, self._chunk_cache)
            if file_identity(self.path, f) != self.identity:
                f.close()
                raise VidgenError(
                    f"{self.path} was rewritten since it was indexed; restart the run to read "
                    "the new file."
                )
            self._file = f
            self._handles = {key: self._file[key] for key in self.keys}
            self._pid = os.getpid()
        return self._handles

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {key: value[0] for key, value in self._read([index]).items()}

    def batch(self, indices: Iterable[int]) -> dict[str, torch.Tensor]:
        """The model batch of these windows, read at once: float ``frames`` [B, T, C, H, W]
        in [0, 1], the other keys [B, T, ...] as stored, and ``index`` [B]."""
        return to_model_batch(self._read(list(indices)))

    def __getitems__(self, indices: list[int]) -> WindowBatch:
        """The DataLoader's batched fetch: the windows are read straight into one batch, in
        shared memory inside a worker (where ``default_collate`` would put its copy), so with
        ``collate_windows`` each frame is copied once on its way to the model."""
        return WindowBatch(self._read(indices, shared=get_worker_info() is not None))

    def _read(self, indices: list[int], shared: bool = False) -> dict[str, torch.Tensor]:
        source = self._source()
        span = window_span(self.length, self.step)
        starts = self.starts[np.asarray(indices, dtype=np.int64)]
        batch = {}
        for key in self.keys:
            array = source[key]
            out = _empty((len(indices), self.length, *array.shape[1:]), array.dtype, shared)
            out_np = out.numpy()
            for row, start in enumerate(starts.tolist()):
                if self.step == 1 and isinstance(array, h5py.Dataset):
                    array.read_direct(out_np[row], np.s_[start : start + span])
                else:  # one contiguous read, then subsample: cheaper than a strided selection
                    out_np[row] = array[start : start + span][:: self.step]
            batch[key] = out
        batch["index"] = torch.as_tensor(indices, dtype=torch.long)
        return batch

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None, "_handles": {}, "_pid": None}


def check_same_dataset(first: ClipDataset, second: ClipDataset) -> None:
    """Refuse splits written by different conversions, e.g. a ``val.h5`` left beside a newer
    ``train.h5``; a file without an id (written without vidgen) matches any."""
    if first.dataset_id and second.dataset_id and first.dataset_id != second.dataset_id:
        raise VidgenError(
            f"{first.path} and {second.path} come from different conversions (dataset_id "
            f"{first.dataset_id} vs {second.dataset_id}); convert the dataset again with --force."
        )


class WindowBatch(Sequence):
    """A batch read at once, seen as its windows: any ``collate_fn`` can stack them as usual
    (each window is made on access, as views), ``collate_windows`` hands over the batch."""

    def __init__(self, batch: dict[str, torch.Tensor]) -> None:
        self.batch = batch

    def __len__(self) -> int:
        return len(self.batch["index"])

    def __getitem__(self, row: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= row < len(self):
            raise IndexError(row)
        return {key: value[row] for key, value in self.batch.items()}


def collate_windows(windows: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """``collate_fn`` for ClipDataset batches: no copy of what ``__getitems__`` read."""
    return windows.batch if isinstance(windows, WindowBatch) else default_collate(windows)


def _empty(shape: tuple[int, ...], dtype: np.dtype, shared: bool) -> torch.Tensor:
    """An uninitialised tensor; ``shared`` puts it in shared memory as ``default_collate``
    does in workers, so that passing it to the main process copies nothing."""
    dtype = torch.from_numpy(np.empty(0, dtype)).dtype
    if not shared:
        return torch.empty(shape, dtype=dtype)
    storage = torch.empty(0, dtype=dtype)._typed_storage()._new_shared(int(np.prod(shape)))
    return torch.empty(0, dtype=dtype).new(storage).view(shape)


def to_model_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """uint8 [B, T, H, W, 3] frames -> float [B, T, 3, H, W] in [0, 1]; other keys as is."""
    frames = batch["frames"]
    if frames.dtype == torch.uint8:
        # B T H W C -> B T C H W
        frames = frames.permute(0, 1, 4, 2, 3).float().div_(255.0)
    return {**batch, "frames": frames}
