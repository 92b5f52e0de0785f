"""A map-style Dataset of windows from one clip file.

The HDF5 file is opened lazily, once per process: h5py handles survive neither pickling
(``spawn``, ``ddp_spawn``) nor ``fork`` reliably. Items stay uint8 and channels-last so
workers move 4x fewer bytes; ``to_model_batch`` makes the float [B, T, C, H, W] batch on
the device.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from vidgen.data.store import DEFAULT_CHUNK_CACHE, PER_FRAME_KEYS, open_clips
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
            self.starts = window_starts(f["episode_starts"][()], length, step, mode)
            self.frame_shape: tuple[int, int, int] = tuple(f["frames"].shape[1:])  # H W 3
            self.fps = float(f.attrs["fps"])
            self.keys = ["frames"] + [k for k in PER_FRAME_KEYS if k in f]
            self.keys += [f"objects/{k}" for k in f.get("objects", {})]
            self._arrays = {k: f[k][()] for k in self.keys} if in_memory else None
            self._chunk_cache = 0 if f["frames"].compression is None else DEFAULT_CHUNK_CACHE
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

    def _source(self) -> dict[str, np.ndarray] | dict[str, h5py.Dataset]:
        if self._arrays is not None:
            return self._arrays
        if self._file is None or self._pid != os.getpid():
            self._file = open_clips(self.path, self._chunk_cache)
            self._handles = {key: self._file[key] for key in self.keys}
            self._pid = os.getpid()
        return self._handles

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        source = self._source()
        start = int(self.starts[index])
        span = window_span(self.length, self.step)
        # One contiguous read per key, then subsample: cheaper than a strided HDF5 selection.
        item = {
            key: torch.from_numpy(np.ascontiguousarray(source[key][start : start + span]))[
                :: self.step
            ]
            for key in self.keys
        }
        item["index"] = torch.tensor(index)
        return item

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None, "_handles": {}, "_pid": None}


def to_model_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """uint8 [B, T, H, W, 3] frames -> float [B, T, 3, H, W] in [0, 1]; other keys as is."""
    frames = batch["frames"]
    if frames.dtype == torch.uint8:
        # B T H W C -> B T C H W
        frames = frames.permute(0, 1, 4, 2, 3).float().div_(255.0)
    return {**batch, "frames": frames}
