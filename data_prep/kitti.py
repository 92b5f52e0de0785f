"""KITTI raw (Geiger et al. 2013) as PredNet (Lotter et al. 2017) uses it.

The city, residential and road recordings; ``image_03/data`` (the right colour camera),
frames sorted by file name within a recording; val = ``2011_09_26_drive_0005_sync``,
test = drives 0104, 0079 and 0070 of 2011_09_26, train = every other drive; frames scaled
to height 128 keeping the aspect and centre-cropped to width 160 (``common.resize_crop``).
Reads the extracted layout ``RAW/<date>/<date>_drive_NNNN_sync/image_03/data/*.png`` and
the per-drive ``RAW/*_sync.zip`` downloads in place; a drive present both ways is read
from its folder. Episodes are named ``<category>/<drive>``.
"""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from data_prep.common import (
    add_source_arguments,
    decode_frame,
    parse_size,
    single_episode,
    write_converted,
)
from vidgen.errors import VidgenError

# The raw layout does not name categories: these are the drive lists of the KITTI raw data
# page (cvlibs.net/datasets/kitti/raw_data.php) for the three categories PredNet downloads.
# fmt: off
_CATEGORY_DRIVES = {
    "city": {
        "2011_09_26": (1, 2, 5, 9, 11, 13, 14, 17, 18, 48, 51, 56, 57, 59, 60, 84, 91, 93, 95,
                       96, 104, 106, 113, 117),
        "2011_09_28": (1, 2),
        "2011_09_29": (26, 71),
    },
    "residential": {
        "2011_09_26": (19, 20, 22, 23, 35, 36, 39, 46, 61, 64, 79, 86, 87),
        "2011_09_30": (18, 20, 27, 28, 33, 34),
        "2011_10_03": (27, 34),
    },
    "road": {
        "2011_09_26": (15, 27, 28, 29, 32, 52, 70, 101),
        "2011_09_29": (4,),
        "2011_09_30": (16,),
        "2011_10_03": (42, 47),
    },
}
# fmt: on
CATEGORY = {
    f"{date}_drive_{number:04d}_sync": category
    for category, dates in _CATEGORY_DRIVES.items()
    for date, numbers in dates.items()
    for number in numbers
}
VAL_DRIVES = ("2011_09_26_drive_0005_sync",)
TEST_DRIVES = (
    "2011_09_26_drive_0104_sync",
    "2011_09_26_drive_0079_sync",
    "2011_09_26_drive_0070_sync",
)
FPS = 10.0
_ZIP_FRAME = re.compile(r"(?:.*/)?(\d{4}_\d\d_\d\d_drive_\d{4}_sync)/image_03/data/[^/]+\.png$")


@dataclass(frozen=True)
class Drive:
    """One recording: its ``image_03/data`` folder or its zip, and its frames in order."""

    name: str
    source: Path
    frames: tuple[str, ...]


def split_of(drive: str) -> str:
    """PredNet's split of a drive."""
    return "val" if drive in VAL_DRIVES else "test" if drive in TEST_DRIVES else "train"


def find_drives(raw: Path, problems: list[str] | None = None) -> dict[str, Drive]:
    """Every drive under ``raw`` by name. An unreadable zip raises, or is described in
    ``problems`` when that is a list (--skip-bad)."""
    drives: dict[str, Drive] = {}
    for archive in sorted(raw.glob("*_sync.zip")):
        try:
            with zipfile.ZipFile(archive) as opened:
                members = opened.namelist()
        except (zipfile.BadZipFile, OSError):
            if problems is None:
                raise VidgenError(f"{archive} is not a readable zip file.") from None
            problems.append(f"{archive} is not a readable zip file.")
            continue
        groups: dict[str, list[str]] = defaultdict(list)
        for member in members:
            if match := _ZIP_FRAME.match(member):
                groups[match.group(1)].append(member)
        if not groups:  # an empty zip still names its drive, so it is reported, not lost
            groups[archive.name.removesuffix(".zip")] = []
        for name, frames in groups.items():
            drives[name] = Drive(name, archive, tuple(sorted(frames)))
    for folder in sorted(raw.glob("*/*_drive_*_sync")):
        if folder.is_dir():
            data = folder / "image_03" / "data"
            frames = tuple(sorted(p.name for p in data.glob("*.png")))
            drives[folder.name] = Drive(folder.name, data, frames)
    return drives


def _frame_bytes(drive: Drive) -> Iterator[tuple[str, bytes]]:
    if drive.source.suffix == ".zip":
        with zipfile.ZipFile(drive.source) as archive:
            for member in drive.frames:
                try:
                    yield f"{drive.source}:{member}", archive.read(member)
                except (zipfile.BadZipFile, OSError):
                    raise VidgenError(f"{drive.source}:{member} is corrupt in the zip.") from None
    else:
        for name in drive.frames:
            yield str(drive.source / name), (drive.source / name).read_bytes()


def load_drive(drive: Drive, size: tuple[int, int]) -> np.ndarray:
    """The drive's frames as uint8 RGB [T, H, W, 3], each resized and centre-cropped."""
    if not drive.frames:
        raise VidgenError(f"drive {drive.name} has no image_03/data/*.png frames ({drive.source}).")
    return np.stack([decode_frame(data, what, size) for what, data in _frame_bytes(drive)])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser, "KITTI raw download: <date>/ folders and/or *_sync.zip files")
    parser.add_argument("--size", default="128x160", help="HxW after resize and centre crop")
    parser.add_argument(
        "--category-unknown",
        choices=("skip", "train"),
        default="skip",
        help="drives outside the city/residential/road lists: skip them, or add them to train",
    )


def run(args: argparse.Namespace) -> int:
    raw = Path(args.raw)
    if not raw.is_dir():
        raise VidgenError(f"{raw} is not a folder; --raw takes the KITTI raw download folder.")
    size = parse_size(args.size)
    problems: list[str] = []
    drives = find_drives(raw, problems if args.skip_bad else None)
    if not drives:
        raise VidgenError(
            f"{raw} holds no KITTI raw drives (<date>/<date>_drive_NNNN_sync folders or "
            "*_sync.zip files); is --raw the right folder?"
        )
    jobs: list[tuple[str, tuple[str, Drive]]] = []  # (split, (episode name, drive))
    unknown = [name for name in sorted(drives) if name not in CATEGORY]
    for name, drive in sorted(drives.items()):
        if name in CATEGORY or args.category_unknown == "train":
            episode = f"{CATEGORY.get(name, 'uncategorized')}/{name}"
            jobs.append((split_of(name), (episode, drive)))
    for split, protocol in (("train", ()), ("val", VAL_DRIVES), ("test", TEST_DRIVES)):
        if not any(job[0] == split for job in jobs):
            named = f" ({', '.join(protocol)})" if protocol else ""
            raise VidgenError(f"{raw} holds no drive of PredNet's {split} split{named}.")
    attrs = {
        "rule": f"KITTI raw image_03/data (right colour camera), frames sorted by name; scaled "
        f"to cover {size[0]}x{size[1]} keeping the aspect (cv2 INTER_AREA), centre-cropped",
        "splits": f"PredNet: val {', '.join(VAL_DRIVES)}; test {', '.join(TEST_DRIVES)}; "
        "train the other drives",
        "category_unknown": args.category_unknown,
    }
    convert = partial(single_episode, partial(load_drive, size=size), args.skip_bad)
    write_converted(args, jobs, convert, "KITTI raw", FPS, attrs, "KITTI drives", problems)
    if unknown:
        action = "added to train" if args.category_unknown == "train" else "skipped"
        print(
            f"note: {len(unknown)} drive(s) outside the city/residential/road lists were "
            f"{action} (e.g. {unknown[0]}).",
            file=sys.stderr,
        )
    return 0
