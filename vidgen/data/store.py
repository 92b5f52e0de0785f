"""The vidgen HDF5 clip store: one file per split, episodes stored back to back.

Layout (format ``vidgen-clips``, version 1):

    frames          uint8   [N, H, W, 3]  RGB, chunked a few frames per chunk
    episode_starts  int64   [E + 1]       episode e is frames[starts[e]:starts[e + 1]]
    episode_names   utf-8   [E]
    actions         float32 [N, A]        optional, action applied at frame t
    states          float32 [N, S]        optional, agent state at frame t
    objects/<name>  float32 [N, ...]      optional per-frame object tracks

The writer builds the file under a temporary name and renames it only once it is
complete, so an interrupted run never leaves a file that looks whole. The files of one
dataset share a ``dataset_id`` attribute. What a reader checks is in ``validation``.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import signal
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from vidgen.data.validation import FORMAT_NAME, FORMAT_VERSION, PER_FRAME_KEYS, validate
from vidgen.errors import VidgenError

# HDF5's chunk cache pays off for compressed chunks read more than once; uncompressed chunks
# are read faster straight into the output with the cache off (benchmarks/loader.py).
DEFAULT_CHUNK_CACHE = 1024**2
NO_SPACE = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def _code_version() -> str:
    from vidgen import __version__

    return __version__


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM while HDF5 runs. HDF5 calls back into Python to write, and
    an exception a signal handler raises inside such a callback is swallowed (h5py prints
    it as unraisable), so the run would go on; a signal that arrives is re-sent once HDF5
    has returned, to the handler that was in place. Handlers set outside Python are left."""
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers run only in the main thread
        return
    arrived: list[int] = []
    held: dict[int, object] = {}
    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(s) is not None:
                # A pending signal's handler runs (and may raise) before the new one is set.
                held[s] = signal.signal(s, lambda signum, _: arrived.append(signum))
        yield
    finally:
        for s, handler in held.items():
            signal.signal(s, handler)
        if arrived:
            signal.raise_signal(arrived[0])


class _GuardedFile(io.FileIO):
    """The file HDF5 writes through. HDF5 cannot recover from a failed write (a full disk
    ends in hundreds of tracebacks and a segfault at close), so a failure is kept here
    instead, later writes are dropped, and the writer raises it once HDF5 has returned;
    the file is then discarded. Signals are held meanwhile (``_signals_held``)."""

    failure: Exception | None = None

    def write(self, data: bytes) -> int:
        view = memoryview(data).cast("B")
        if self.failure is None:
            try:
                done = 0
                while done < len(view):
                    done += super().write(view[done:])
            except Exception as err:  # re-raised by ClipWriter
                self.failure = err
        return len(view)

    def truncate(self, size: int | None = None) -> int:
        if self.failure is None:
            try:
                return super().truncate(size)
            except Exception as err:  # re-raised by ClipWriter
                self.failure = err
        return size or 0


class AllOrNothing:
    """Output that appears only if its ``with`` block ends without error: then ``finish``
    completes it and ``publish`` moves it into place; either way ``discard`` removes what is
    left unpublished. Subclasses provide the three."""

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        try:
            if exc_type is None:
                self.finish()
                self.publish()
        finally:
            self.discard()


class ClipWriter(AllOrNothing):
    """Append episodes to a new clip file; the file appears under ``path`` only on success.

    Use as a context manager: an exception inside the block removes the partial file. A
    full disk or an unwritable folder is one VidgenError. ``dataset_id`` marks the files of
    one dataset (a fresh one by default).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fps: float,
        source: str,
        compression: str | None = None,
        chunk_frames: int = 10,
        force: bool = False,
        attrs: Mapping[str, object] | None = None,
        dataset_id: str | None = None,
    ) -> None:
        self.path = Path(path)
        if self.path.exists() and not force:
            raise VidgenError(f"{self.path} already exists; pass --force to overwrite it.")
        if not math.isfinite(fps) or fps <= 0:
            raise VidgenError(f"fps must be a positive finite number, got {fps}.")
        self.tmp_path = self.path.with_name(f".{self.path.name}.partial")
        self.fps, self.source, self.compression = float(fps), source, compression
        self.chunk_frames = chunk_frames
        self.attrs = dict(attrs or {})
        self.dataset_id = dataset_id or uuid.uuid4().hex
        self.starts: list[int] = [0]
        self.names: list[str] = []
        self._raw: _GuardedFile | None = None
        self._file: h5py.File | None = None

    def __enter__(self) -> ClipWriter:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._raw = _GuardedFile(self.tmp_path, "w+")
        except OSError as err:
            raise VidgenError(
                f"cannot write {self.path}: {err.strerror}; choose a writable folder."
            ) from None
        with _signals_held():
            self._file = h5py.File(self._raw, "w")
        return self

    def add_episode(
        self,
        name: str,
        frames: np.ndarray,
        actions: np.ndarray | None = None,
        states: np.ndarray | None = None,
        objects: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Append one episode. ``frames`` is uint8 [T, H, W, 3]; the rest have T rows."""
        if self._file is None:
            raise RuntimeError("ClipWriter.add_episode called outside its `with` block")
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise VidgenError(
                f"episode {name!r}: frames must be uint8 [T, H, W, 3], "
                f"got {frames.dtype} {list(frames.shape)}."
            )
        n = len(frames)
        if n == 0:
            raise VidgenError(f"episode {name!r} has no frames.")
        arrays = {"frames": frames}
        for key, value in (("actions", actions), ("states", states)):
            if value is not None:
                value = np.asarray(value, dtype=np.float32)
                arrays[key] = value.reshape(len(value), -1)
        for key, value in (objects or {}).items():
            arrays[f"objects/{key}"] = np.asarray(value, dtype=np.float32)
        for key, value in arrays.items():
            if len(value) != n:
                raise VidgenError(
                    f"episode {name!r}: {key} has {len(value)} rows but there are {n} frames."
                )
            try:
                with _signals_held():
                    self._append(key, value)
            finally:  # HDF5's own error after a dropped write is a consequence: name the cause
                self._raise_write_failure()
        self.starts.append(self.starts[-1] + n)
        self.names.append(name)

    def _append(self, key: str, value: np.ndarray) -> None:
        f = self._file
        assert f is not None
        first_episode = len(self.names) == 0
        if key not in f:
            if not first_episode:
                raise VidgenError(f"{key} must be given for every episode or for none.")
            chunks = (min(self.chunk_frames, len(value)), *value.shape[1:])
            f.create_dataset(
                key,
                shape=(0, *value.shape[1:]),
                maxshape=(None, *value.shape[1:]),
                dtype=value.dtype,
                chunks=chunks,
                compression=self.compression if key == "frames" else None,
            )
        dset = f[key]
        if dset.shape[1:] != value.shape[1:]:
            raise VidgenError(
                f"{key} of every episode must have shape [T, {', '.join(map(str, dset.shape[1:]))}]"
                f", got {list(value.shape)}."
            )
        old = dset.shape[0]
        if old != self.starts[-1]:
            raise VidgenError(f"{key} must be given for every episode or for none.")
        dset.resize(old + len(value), axis=0)
        dset[old:] = value

    def _raise_write_failure(self) -> None:
        failure = self._raw.failure if self._raw is not None else None
        if failure is None:
            return
        if isinstance(failure, OSError) and failure.errno in NO_SPACE:
            raise VidgenError(
                f"no space left on device writing {self.path} ({failure.strerror}); free some "
                "space and run again."
            ) from None
        if isinstance(failure, OSError):
            raise VidgenError(f"cannot write {self.path}: {failure.strerror}.") from None
        raise failure

    def finish(self) -> None:
        """Complete the file under its temporary name (``publish`` moves it into place)."""
        f = self._file
        if f is None:
            raise RuntimeError("ClipWriter.finish called outside its `with` block")
        if not self.names:
            raise VidgenError(f"no episodes were written to {self.path}.")
        try:
            with _signals_held():
                for key in PER_FRAME_KEYS:
                    if key in f and f[key].shape[0] != self.starts[-1]:
                        raise VidgenError(f"{key} must be given for every episode or for none.")
                f.create_dataset("episode_starts", data=np.asarray(self.starts, dtype=np.int64))
                f.create_dataset("episode_names", data=self.names, dtype=h5py.string_dtype("utf-8"))
                f.attrs.update(
                    {
                        "format": FORMAT_NAME,
                        "format_version": FORMAT_VERSION,
                        "fps": self.fps,
                        "source": self.source,
                        "channel_order": "RGB",
                        "command": " ".join(sys.argv),
                        "vidgen_version": _code_version(),
                        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "dataset_id": self.dataset_id,
                    }
                )
                for key, value in self.attrs.items():
                    f.attrs[key] = value
                self._close()
        finally:
            self._raise_write_failure()

    def publish(self) -> None:
        """Move the finished file to ``path``, replacing what was there."""
        os.replace(self.tmp_path, self.path)

    def discard(self) -> None:
        """Close and remove the temporary file, whatever state it is in."""
        try:
            with suppress(Exception):  # the file is thrown away: errors closing it do not matter
                self._close()
        finally:
            self.tmp_path.unlink(missing_ok=True)

    def _close(self) -> None:
        f, self._file = self._file, None
        try:
            if f is not None:
                with _signals_held():
                    f.close()
        finally:
            if self._raw is not None:
                self._raw.close()


def open_clips(
    path: str | os.PathLike,
    chunk_cache_bytes: int = DEFAULT_CHUNK_CACHE,
    max_frame_pixels: int | None = None,
) -> h5py.File:
    """Open a clip file read-only after checking its format and safety (``validation``);
    a problem is one sentence."""
    path = Path(path)
    if path.is_dir():
        inside = sorted(path.glob("*.h5"))
        example = inside[0] if inside else path / "train.h5"
        raise VidgenError(f"{path} is a folder; pass a split file inside it, e.g. {example}.")
    if not path.is_file():
        raise VidgenError(f"{path} does not exist.")
    try:
        f = h5py.File(path, "r", rdcc_nbytes=chunk_cache_bytes, locking=False)
    except OSError:
        raise VidgenError(f"{path} is not a readable HDF5 file (truncated or foreign).") from None
    try:
        validate(f, path, max_frame_pixels)
    except BaseException:
        f.close()
        raise
    return f


def file_identity(path: str | os.PathLike, f: h5py.File) -> tuple[object, ...]:
    """What tells one version of an open clip file from a rewrite of it: its dataset id
    (when it has one), inode, modification time and size."""
    stat = os.stat(path)
    return (_plain(f.attrs.get("dataset_id")), stat.st_ino, stat.st_mtime_ns, stat.st_size)


def summarize(path: str | os.PathLike) -> dict[str, object]:
    """Validated summary of a clip file: counts, frame size, fps, per-frame keys, attributes."""
    with open_clips(path) as f:
        starts = f["episode_starts"][()]
        lengths = np.diff(starts)
        keys = {k: list(f[k].shape[1:]) for k in PER_FRAME_KEYS if k in f}
        keys.update({f"objects/{k}": list(v.shape[1:]) for k, v in f.get("objects", {}).items()})
        return {
            "path": str(path),
            "episodes": len(lengths),
            "frames": int(starts[-1]),
            "frame_size": list(f["frames"].shape[1:3]),
            "episode_length": {"min": int(lengths.min()), "max": int(lengths.max())},
            "fps": float(f.attrs["fps"]),
            "per_frame": keys,
            "attributes": {k: _plain(v) for k, v in f.attrs.items()},
            "world": _world(f.attrs),
        }


def _world(attrs: Mapping[str, object]) -> dict[str, object] | None:
    """A synthetic world's name and config (plain JSON data), or None for recorded video."""
    if "world" not in attrs:
        return None
    if "world_config" not in attrs and any(k.startswith("option_") for k in attrs):
        raise VidgenError(
            "this synthetic file predates recorded world configs and set world options; "
            "render it again with vidgen-prep synthetic --force."
        )
    try:
        config = json.loads(attrs.get("world_config", "{}"))
    except (TypeError, ValueError):
        raise VidgenError("the file's world_config attribute is not JSON.") from None
    if not isinstance(config, dict):
        raise VidgenError("the file's world_config attribute is not a JSON object.")
    return {"name": str(attrs["world"]), "config": config}


def _plain(value: object) -> object:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
