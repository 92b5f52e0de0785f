"""What every converter shares: the split writer, the resize-then-crop rule, sizes, progress."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, suppress
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
from rich.progress import track

from vidgen.data.store import AllOrNothing, ClipWriter
from vidgen.errors import VidgenError

T = TypeVar("T")
R = TypeVar("R")

# What converting one source gives: its episodes as (name, arrays for SplitWriter.add: frames
# and optionally actions / states), and the one-line reasons for what --skip-bad left out.
Converted = tuple[list[tuple[str, dict[str, np.ndarray]]], list[str]]


class SplitWriter(AllOrNothing):
    """Writes ``train.h5`` / ``val.h5`` / ``test.h5`` into ``out``, all or nothing.

    Each split's file is built under a temporary name; all are renamed into place only
    when the ``with`` block ends without error, and a split that got no episode is not
    written at all. The splits share one ``dataset_id``. An existing dataset is refused
    unless ``force``, which replaces it as a whole: its ``.h5`` files that this run does
    not write are removed, but only once the new splits are complete.
    """

    def __init__(
        self,
        out: str | os.PathLike,
        *,
        fps: float,
        source: str,
        force: bool = False,
        compression: str | None = None,
        attrs: Mapping[str, object] | None = None,
    ) -> None:
        self.out = Path(out)
        existing = sorted(self.out.glob("*.h5")) if self.out.is_dir() else []
        if existing and not force:
            raise VidgenError(f"{self.out} already holds a dataset; pass --force to overwrite it.")
        if self.out.exists() and not self.out.is_dir():
            raise VidgenError(f"{self.out} exists and is not a folder.")
        self.created_out = not self.out.exists()
        self.options = dict(
            fps=fps, source=source, compression=compression, attrs=attrs, force=force
        )
        self.dataset_id = uuid.uuid4().hex
        self.writers: dict[str, ClipWriter] = {}
        self.published = False

    def __enter__(self) -> SplitWriter:
        return self

    def add(self, split: str, name: str, frames: np.ndarray, **per_frame: object) -> None:
        """Append one episode to ``split``; keywords as ClipWriter.add_episode."""
        if split not in self.writers:
            path = self.out / f"{split}.h5"
            writer = ClipWriter(path, dataset_id=self.dataset_id, **self.options)
            self.writers[split] = writer.__enter__()
        self.writers[split].add_episode(name, frames, **per_frame)

    def finish(self) -> None:
        """Complete every split's file under its temporary name."""
        if not self.writers:
            raise VidgenError(f"nothing was written to {self.out}: no episodes were found.")
        for writer in self.writers.values():
            writer.finish()

    def publish(self) -> None:
        """Move the new splits into place, then remove the old ones they do not replace: an
        interruption in between leaves splits of two ids, which readers refuse, never none."""
        for writer in self.writers.values():
            writer.publish()
        self.published = True
        written = {writer.path for writer in self.writers.values()}
        for stale in self.out.glob("*.h5"):
            if stale not in written:
                stale.unlink()

    def discard(self) -> None:
        """Remove the unpublished files, and ``out`` if this run made it and published none."""
        for writer in self.writers.values():
            writer.discard()
        if self.created_out and not self.published and self.out.is_dir():
            with suppress(OSError):  # only if empty: never remove what someone put there
                self.out.rmdir()


def parse_size(text: str) -> tuple[int, int]:
    """'128x160' -> (128, 160); '64' -> (64, 64). Sizes must be positive."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) <= 0:
        raise VidgenError(f"size must be HxW with positive integers (e.g. 128x160), got {text!r}.")
    return parts[0], parts[1]


def resize_crop(
    frame: np.ndarray, height: int, width: int, interpolation: int = cv2.INTER_AREA
) -> np.ndarray:
    """Scale ``frame`` [h, w, 3] so it covers height x width keeping its aspect, then
    centre-crop. For KITTI (375x1242 -> 128x160) this is PredNet's rule: height 128, then
    the central 160 columns.
    """
    h, w = frame.shape[:2]
    scale = max(height / h, width / w)
    new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
    if (new_h, new_w) != (h, w):
        frame = cv2.resize(frame, (new_w, new_h), interpolation=interpolation)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return np.ascontiguousarray(frame[top : top + height, left : left + width])


def progress(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """A progress bar on stderr over ``items``."""
    yield from track(items, description=description, total=total, transient=True)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def add_source_arguments(parser: argparse.ArgumentParser, raw_help: str) -> None:
    """The options every converter of a downloaded dataset shares."""
    parser.add_argument("--raw", required=True, help=raw_help)
    parser.add_argument("--out", required=True, help="dataset folder to create")
    parser.add_argument(
        "--workers", type=_positive_int, default=2, help="processes decoding recordings (default 2)"
    )
    parser.add_argument(
        "--skip-bad", action="store_true", help="skip and report corrupt recordings, not stop"
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing dataset")


def decode_frame(data: bytes, what: str, size: tuple[int, int]) -> np.ndarray:
    """PNG or JPEG bytes -> uint8 RGB [H, W, 3], ``size`` (H, W) by ``resize_crop``; a
    VidgenError naming ``what`` when they are not an image."""
    frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if frame is None:
        raise VidgenError(f"{what} is not a decodable image (corrupt or truncated).")
    return resize_crop(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), *size)


def _init_worker() -> None:
    # Ctrl-C reaches the whole process group: only the parent should handle it (it stops
    # the pool and removes partial files), not every worker with its own traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The worker processes already share out the cores; OpenCV threads would oversubscribe.
    cv2.setNumThreads(1)


def _pool_context() -> multiprocessing.context.BaseContext:
    # Forking this process can copy a lock held by one of its threads (OpenCV's pool after
    # an in-process run, the progress bar) into a worker, which then waits forever. The
    # fork server is a fresh single-threaded process that imports the converters once.
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["data_prep"])
    return context


def parallel_map(
    func: Callable[[T], R], items: Sequence[T], workers: int, description: str
) -> Iterator[R]:
    """``func`` over ``items`` in order, in ``workers`` processes, with a progress bar.

    Workers only decode; the caller consumes the results in this process and does all
    writing, so HDF5 is never touched from two processes. ``func`` must be picklable.
    """
    if workers <= 1 or len(items) <= 1:
        yield from progress(map(func, items), description, total=len(items))
        return
    with _pool_context().Pool(min(workers, len(items)), _init_worker) as pool:
        yield from progress(pool.imap(func, items), description, total=len(items))


def single_episode(
    load: Callable[[T], np.ndarray], skip_bad: bool, named: tuple[str, T]
) -> Converted:
    """A source that is one episode: ``named`` is (episode name, source), ``load`` gives its
    frames; with ``skip_bad`` a bad source is reported instead of raising."""
    name, source = named
    try:
        return [(name, {"frames": load(source)})], []
    except VidgenError as err:
        if not skip_bad:
            raise
        return [], [str(err)]


def write_converted(
    args: argparse.Namespace,
    jobs: Sequence[tuple[str, T]],
    convert: Callable[[T], Converted],
    source: str,
    fps: float,
    attrs: Mapping[str, object],
    description: str,
    skipped: Sequence[str] = (),
) -> None:
    """Convert each (split, source) job in ``args.workers`` processes and write its episodes
    into that split of ``args.out``, all or nothing; what --skip-bad left out (here and in
    the ``skipped`` found earlier) is reported even when the run fails."""
    results = parallel_map(convert, [job for _, job in jobs], args.workers, description)
    problems = list(skipped)
    # closing() stops the worker pool at once when writing fails or is interrupted.
    try:
        with (
            closing(results),
            SplitWriter(args.out, fps=fps, source=source, force=args.force, attrs=attrs) as out,
        ):
            for (split, _), (episodes, skipped) in zip(jobs, results, strict=True):
                problems += skipped
                for name, arrays in episodes:
                    out.add(split, name, **arrays)
    finally:
        report_skipped(problems)


def report_skipped(problems: Sequence[str]) -> None:
    """Tell the user, on stderr, what --skip-bad left out."""
    if problems:
        print(f"skipped {len(problems)} bad item(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
