"""What a clip file must pass before any of its data is read.

A clip file may come from anywhere, so the reader trusts nothing in it. Beyond the format
(attributes, shapes, episode bounds) it refuses what HDF5 offers to make a file read other
files (external storage, external or soft links, virtual datasets) and sizes the file
cannot back: a frame larger than ``max_frame_pixels``, or a dataset declaring more bytes
than are stored (a sparse ``[20, 30000, 30000, 3]`` in a 6 KB file). All of this looks
only at metadata, so a hostile file is refused before anything is allocated.
"""

from __future__ import annotations

import math
import os

import h5py
import numpy as np

from vidgen.errors import VidgenError

FORMAT_NAME = "vidgen-clips"
FORMAT_VERSION = 1
PER_FRAME_KEYS = ("actions", "states")
MAX_FRAME_PIXELS_ENV = "VIDGEN_MAX_FRAME_PIXELS"
DEFAULT_MAX_FRAME_PIXELS = 4096 * 4096
# A compressed dataset may declare at most this many times the bytes it stores (gzip tops
# out near 1032:1 on blank data; LZF far lower), and must store every one of its chunks.
MAX_COMPRESSION_RATIO = 1000


def max_frame_pixels(override: int | None = None) -> int:
    """The largest H x W accepted: ``override``, else $VIDGEN_MAX_FRAME_PIXELS, else 4096^2."""
    if override is not None:
        return override
    text = os.environ.get(MAX_FRAME_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_FRAME_PIXELS
    if not text.isdigit() or int(text) < 1:
        raise VidgenError(f"{MAX_FRAME_PIXELS_ENV}={text!r} must be a positive number of pixels.")
    return int(text)


def validate(f: h5py.File, path: str | os.PathLike, max_pixels: int | None = None) -> None:
    """Raise VidgenError naming the first thing about ``f`` that breaks the format or is
    unsafe to read; reads nothing larger than ``episode_starts``, and that only once its
    size has been checked."""
    _check_attributes(f, path)
    _check_links(f, path)
    datasets = clip_datasets(f, path)
    frames = datasets["frames"]
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise VidgenError(
            f"{path}: frames must be uint8 [N, H, W, 3], got {frames.dtype} {_shape(frames)}."
        )
    height, width = frames.shape[1:3]
    limit = max_frame_pixels(max_pixels)
    if height * width > limit:
        raise VidgenError(
            f"{path}: frames of {height}x{width} exceed the limit of {limit} pixels per frame; "
            f"set {MAX_FRAME_PIXELS_ENV} to read larger frames."
        )
    starts_set = datasets["episode_starts"]
    if starts_set.ndim != 1 or starts_set.dtype.kind not in "iu":
        raise VidgenError(
            f"{path}: episode_starts must be a 1-D integer dataset, got {starts_set.dtype} "
            f"{_shape(starts_set)}."
        )
    n = frames.shape[0]
    if h5py.check_string_dtype(datasets["episode_names"].dtype) is None:
        raise VidgenError(f"{path}: episode_names must be strings.")
    for key, dset in datasets.items():
        if dset.ndim == 0:
            raise VidgenError(f"{path}: '{key}' must have one row per item, not be a scalar.")
        if key not in ("frames", "episode_starts", "episode_names"):
            if dset.dtype.kind not in "fiu":
                raise VidgenError(f"{path}: {key} must hold numbers, not {dset.dtype}.")
            if dset.shape[0] != n:
                raise VidgenError(
                    f"{path}: {key} has {dset.shape[0]} rows but there are {n} frames."
                )
    if starts_set.shape[0] > n + 1:
        raise VidgenError(f"{path}: episode_starts has more entries than there are frames.")
    for key, dset in datasets.items():
        _check_storage(dset, key, path)
    starts = starts_set[()]
    if len(starts) < 2 or starts[0] != 0 or starts[-1] != n:
        raise VidgenError(f"{path}: episode_starts must run from 0 to the frame count {n}.")
    if np.any(np.diff(starts) <= 0):
        raise VidgenError(f"{path}: episode_starts must be strictly increasing.")
    if len(datasets["episode_names"]) != len(starts) - 1:
        raise VidgenError(f"{path}: episode_names must have one name per episode.")


def _shape(dset: h5py.Dataset) -> list[int]:
    return list(dset.shape or ())  # an empty (null) dataspace has no shape


def _check_attributes(f: h5py.File, path: str | os.PathLike) -> None:
    if not isinstance(f.attrs.get("format"), str) or f.attrs["format"] != FORMAT_NAME:
        raise VidgenError(f"{path} is not a vidgen clip file (no format={FORMAT_NAME} attribute).")
    version = f.attrs.get("format_version")
    if version is None:
        raise VidgenError(f"{path} lacks the format_version attribute (1 for this format).")
    if not _is_number(version, integer=True) or version < 1:
        raise VidgenError(
            f"{path}: format_version must be a positive integer, got {_shown(version)}."
        )
    if version > FORMAT_VERSION:
        raise VidgenError(
            f"{path} has format version {version}; this vidgen reads up to {FORMAT_VERSION}."
        )
    fps = f.attrs.get("fps")
    if fps is None:
        raise VidgenError(f"{path} lacks the fps attribute (frames per second, e.g. 10.0).")
    if not _is_number(fps) or not math.isfinite(fps) or fps <= 0:
        raise VidgenError(f"{path}: fps must be a positive finite number, got {_shown(fps)}.")


def _shown(value: object) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


def _is_number(value: object, integer: bool = False) -> bool:
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    return isinstance(value, kinds) and not isinstance(value, (bool, np.bool_))


def _check_links(f: h5py.File, path: str | os.PathLike) -> None:
    """Every link in the file must be a hard link: an external link opens another file, a
    soft link names a path the checks below would not see."""
    links: list[str] = []
    f.visit_links(links.append)
    for name in links:
        try:
            link = f.get(name, getlink=True)
        except TypeError:  # h5py knows hard, soft and external links; anything else is foreign
            raise VidgenError(
                f"{path}: '{name}' is a user-defined link; a clip file stores its datasets "
                "directly."
            ) from None
        if isinstance(link, h5py.ExternalLink):
            raise VidgenError(
                f"{path}: '{name}' is an external link to {link.filename}; a clip file may not "
                "read other files."
            )
        if isinstance(link, h5py.SoftLink):
            raise VidgenError(
                f"{path}: '{name}' is a soft link to {link.path}; a clip file stores its "
                "datasets directly."
            )


def clip_datasets(f: h5py.File, path: str | os.PathLike) -> dict[str, h5py.Dataset]:
    """Every dataset the reader uses, by name, each checked to be stored in this file."""
    keys = ["frames", "episode_starts", "episode_names"]
    for key in keys:
        if key not in f:
            raise VidgenError(f"{path} lacks the '{key}' dataset.")
    keys += [k for k in PER_FRAME_KEYS if k in f]
    if "objects" in f:
        if not isinstance(f["objects"], h5py.Group):
            raise VidgenError(f"{path}: 'objects' must be a group of per-frame datasets.")
        keys += [f"objects/{k}" for k in f["objects"]]
    return {key: _local_dataset(f[key], key, path) for key in keys}


def _local_dataset(obj: object, key: str, path: str | os.PathLike) -> h5py.Dataset:
    if not isinstance(obj, h5py.Dataset):
        raise VidgenError(f"{path}: '{key}' must be a dataset, not a {type(obj).__name__}.")
    if obj.external:
        files = ", ".join(sorted({str(name) for name, *_ in obj.external}))
        raise VidgenError(
            f"{path}: '{key}' keeps its data in external file(s) {files}; a clip file may "
            "not read other files."
        )
    if obj.is_virtual:
        raise VidgenError(
            f"{path}: '{key}' is a virtual dataset mapped from other data; a clip file must "
            "store its datasets itself."
        )
    return obj


def _check_storage(dset: h5py.Dataset, key: str, path: str | os.PathLike) -> None:
    """The bytes ``dset`` declares must be backed by the file: all of them when stored raw;
    when filtered, every chunk stored and at most MAX_COMPRESSION_RATIO times the bytes."""
    declared = dset.size * dset.dtype.itemsize
    if declared == 0:
        return
    stored = dset.id.get_storage_size()
    if dset.id.get_create_plist().get_nfilters() == 0:
        plausible = stored >= declared
    else:
        grid = zip(dset.shape, dset.chunks, strict=True)
        chunks = math.prod(-(-side // chunk) for side, chunk in grid)
        plausible = (
            dset.id.get_num_chunks() == chunks and declared <= MAX_COMPRESSION_RATIO * stored
        )
    if not plausible:
        raise VidgenError(
            f"{path}: '{key}' declares {declared:,} bytes but the file stores {stored:,} of "
            "them; it is truncated, sparse or forged."
        )
