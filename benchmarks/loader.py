"""Loader throughput: random `all` windows (T=10) per second through the DataLoader, as a
ratio to a raw contiguous h5py read of the same windows in the same run (goal: >= 0.5).

Two datasets are written first: 64x64 synthetic renders with LZF (as `vidgen-prep synthetic`
writes them) and 128x160 camera-like frames without compression (as the KITTI and Caltech
converters write them). Each is read with the worker count VideoDataModule picks
(``num_workers: auto``) and, for comparison, with ``--workers`` processes.

    python -m benchmarks.loader [--windows 2000 --workers 2 --batch 8]

Record: benchmarks/results/loader.json.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import RandomSampler

from benchmarks.record import Run, parser, settings
from vidgen.data import ClipDataset, ClipWriter, VideoDataModule, collate_windows
from vidgen.data.read_ahead import ReadAheadLoader

LENGTH = 10
DATASETS = {"64x64 lzf": ((64, 64), "lzf"), "128x160 raw": ((128, 160), None)}


def write_dataset(path: Path, size: tuple[int, int], compression: str | None) -> None:
    """20 episodes of 150 frames: smooth blobs (compressible) or noise (camera-like)."""
    rng = np.random.default_rng(0)
    with ClipWriter(path, fps=10, source="benchmark", compression=compression) as writer:
        for e in range(20):
            if compression:
                frames = np.zeros((150, *size, 3), np.uint8)
                frames[:, : size[0] // 3, : size[1] // 3] = rng.integers(0, 256, 3, np.uint8)
            else:
                frames = rng.integers(0, 256, (150, *size, 3), dtype=np.uint8)
            writer.add_episode(f"episode_{e}", frames)


def raw_read(path: Path, starts: np.ndarray) -> float:
    """Windows/s of a plain h5py loop reading each window as one contiguous slice."""
    with h5py.File(path, "r") as f:
        frames = f["frames"]
        begin = time.perf_counter()
        for start in starts:
            frames[start : start + LENGTH]
        return len(starts) / (time.perf_counter() - begin)


def loader_read(path: Path, windows: int, workers: int, batch: int) -> float:
    """Windows/s through ClipDataset and the DataModule's loader class (which reads ahead in
    a thread without workers) with random `all` windows and workers."""
    dataset = ClipDataset(path, LENGTH, mode="all")
    sampler = RandomSampler(dataset, num_samples=windows)
    loader = ReadAheadLoader(
        dataset,
        batch_size=batch,
        sampler=sampler,
        num_workers=workers,
        drop_last=True,
        collate_fn=collate_windows,
    )
    batches = iter(loader)
    next(batches)  # worker start-up is a one-off cost per epoch: time the steady state
    begin = time.perf_counter()
    seen = sum(len(b["frames"]) for b in batches)
    return seen / (time.perf_counter() - begin)


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--windows", type=int, default=2000)
    args_parser.add_argument("--workers", type=int, default=2)
    args_parser.add_argument("--batch", type=int, default=8)
    args = args_parser.parse_args()
    run = Run(args.results)
    torch.manual_seed(0)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (size, compression) in DATASETS.items():
            path = Path(tmp) / f"{size[0]}x{size[1]}.h5"
            write_dataset(path, size, compression)
            starts = np.random.default_rng(1).choice(ClipDataset(path, LENGTH).starts, args.windows)
            raw_read(path, starts[:100])  # warm the page cache for both readers alike
            raw = raw_read(path, starts)
            auto = VideoDataModule(tmp).workers(ClipDataset(path, LENGTH))
            results[name] = {"raw_windows_per_s": raw, "auto_workers": auto}
            for label, workers in (("auto", auto), ("workers", args.workers)):
                ours = loader_read(path, args.windows, workers, args.batch)
                results[name][f"{label}_windows_per_s"] = ours
                results[name][f"{label}_ratio"] = ours / raw
                print(f"{name}, {workers} workers: DataLoader {ours:.0f} windows/s, raw h5py "
                      f"{raw:.0f} windows/s -> ratio {ours / raw:.2f} (goal >= 0.5)")  # fmt: skip
    protocol = {
        "figures": f"{args.windows} random T={LENGTH} windows of files written in this run "
        "(20 episodes x 150 frames each); the raw h5py read of the same windows, in the "
        "same run, is the baseline of each ratio"
    }
    setup = {**settings(args), "datasets": list(DATASETS)}
    run.write("loader", results, protocol, setup)


if __name__ == "__main__":
    main()
