"""Caltech Pedestrian (Dollar et al. 2009) as PredNet (Lotter et al. 2017) tests on it.

Sets 06-10 are the test split (sets 00-05 the train split with ``--with-train``); every
3rd frame from frame 0 is kept (30 -> 10 fps, as PreCNet's ``process_cal_ped_test.py``),
scaled to cover 128x160 keeping the aspect and centre-cropped as KITTI is; episodes are
named ``setXX/VYYY``. The ``.seq`` files are read here in pure Python, following Piotr
Dollar's ``seqIo``/``seqReaderPlugin``: a 1024-byte Norpix header ('Norpix seq' at byte
4; width, height, bit depths, image size, image format, frame count and true image size
as uint32 from byte 548; fps as float64 at 584), then per frame a uint32 size (counting
itself), the JPEG, and 8 bytes of timestamp (16 when the writer padded them). Frames are
found by walking those sizes, so OpenCV's own demuxer is not involved.
"""

from __future__ import annotations

import argparse
import re
import struct
import sys
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

TEST_SETS = tuple(f"set{n:02d}" for n in range(6, 11))
TRAIN_SETS = tuple(f"set{n:02d}" for n in range(6))
STEP = 3
FPS = 10.0
JPEG_FORMATS = (102, 201)  # seqIo's 'jpg' image formats; Caltech's videos are 102
_VIDEO = re.compile(r"V\d{3}\.seq$")


@dataclass(frozen=True)
class SeqHeader:
    width: int
    height: int
    image_format: int
    num_frames: int
    header_size: int
    fps: float


def read_header(data: bytes, path: Path) -> SeqHeader:
    """The Norpix header of a .seq file's bytes; a VidgenError if it is not one."""
    if len(data) < 1024 or struct.unpack_from("<I", data)[0] != 0xFEED:
        raise VidgenError(f"{path} is not a Norpix .seq file (no 'Norpix seq' header).")
    if data[4:24].decode("utf-16-le", errors="replace") != "Norpix seq":
        raise VidgenError(f"{path} is not a Norpix .seq file (no 'Norpix seq' header).")
    header_size = struct.unpack_from("<I", data, 32)[0]
    width, height, _, _, _, image_format, num_frames = struct.unpack_from("<7I", data, 548)
    fps = struct.unpack_from("<d", data, 584)[0]
    if image_format not in JPEG_FORMATS:
        raise VidgenError(
            f"{path} stores image format {image_format}; only JPEG .seq files "
            f"(formats {JPEG_FORMATS[0]} and {JPEG_FORMATS[1]}, as Caltech's) are supported."
        )
    return SeqHeader(width, height, image_format, num_frames, header_size, fps)


def frame_spans(data: bytes, header: SeqHeader, path: Path) -> list[tuple[int, int]]:
    """(start, end) byte offsets of every frame's JPEG, found by walking the size fields.

    A header frame count of 0 means "unknown": then the walk runs to the end of the file.
    """
    spans: list[tuple[int, int]] = []
    pos, extra = header.header_size, 8  # the 8-byte timestamp after each image
    while pos < len(data) and (header.num_frames == 0 or len(spans) < header.num_frames):
        size = struct.unpack_from("<I", data, pos)[0] if pos + 4 <= len(data) else 0
        if size < 4 or pos + size > len(data):
            raise VidgenError(
                f"{path} is truncated: frame {len(spans)} runs past the end of the file."
            )
        if data[pos + 4 : pos + 6] != b"\xff\xd8":
            raise VidgenError(f"{path}: frame {len(spans)} does not start a JPEG; it is corrupt.")
        spans.append((pos + 4, pos + size))
        pos += size + extra
        # As seqIo: a zero where the second frame's size should be means each timestamp
        # is followed by 8 empty bytes.
        if len(spans) == 1 and data[pos : pos + 4] == b"\0\0\0\0":
            extra += 8
            pos += 8
    if len(spans) < header.num_frames:
        raise VidgenError(
            f"{path} is truncated: it holds {len(spans)} of the {header.num_frames} frames "
            "its header announces."
        )
    return spans


def load_video(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Every STEP-th frame of a .seq file from frame 0, as uint8 RGB [T, H, W, 3]."""
    data = path.read_bytes()
    spans = frame_spans(data, read_header(data, path), path)
    if not spans:
        raise VidgenError(f"{path} holds no frames.")
    frames = []
    for index in range(0, len(spans), STEP):
        start, end = spans[index]
        jpeg = data[start:end]
        what = f"frame {index} of {path}"
        if not jpeg.endswith(b"\xff\xd9"):
            raise VidgenError(f"{what} is not a complete JPEG (corrupt or truncated).")
        frames.append(decode_frame(jpeg, what, size))
    return np.stack(frames)


def find_videos(raw: Path, sets: tuple[str, ...]) -> list[tuple[str, Path]]:
    """(``setXX/VYYY``, path) of every video of ``sets`` under ``raw``, in order."""
    return [
        (f"{name}/{path.stem}", path)
        for name in sets
        for path in sorted((raw / name).glob("V*.seq"))
        if _VIDEO.match(path.name)
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser, "folder holding set00 ... set10 with their V*.seq files")
    parser.add_argument("--size", default="128x160", help="HxW after resize and centre crop")
    parser.add_argument(
        "--with-train", action="store_true", help="also convert sets 00-05 as the train split"
    )


def run(args: argparse.Namespace) -> int:
    raw = Path(args.raw)
    if not raw.is_dir():
        raise VidgenError(f"{raw} is not a folder; --raw takes the folder holding set06 ... set10.")
    size = parse_size(args.size)
    splits = {"test": TEST_SETS, **({"train": TRAIN_SETS} if args.with_train else {})}
    jobs: list[tuple[str, tuple[str, Path]]] = []  # (split, (episode name, .seq file))
    for split, sets in splits.items():
        videos = find_videos(raw, sets)
        if not videos:
            raise VidgenError(
                f"{raw} holds no {split} video ({sets[0]}/V*.seq ... {sets[-1]}/V*.seq); "
                "is --raw the folder holding the setXX folders?"
            )
        missing = [name for name in sets if not (raw / name).is_dir()]
        if missing:
            print(f"note: {', '.join(missing)} not found in {raw}.", file=sys.stderr)
        jobs += [(split, video) for video in videos]
    attrs = {
        "rule": "every 3rd frame from frame 0 (30 -> 10 fps); scaled to cover "
        f"{size[0]}x{size[1]} keeping the aspect (cv2 INTER_AREA), centre-cropped",
        "splits": "test: set06-set10" + ("; train: set00-set05" if args.with_train else ""),
    }
    convert = partial(single_episode, partial(load_video, size=size), args.skip_bad)
    write_converted(args, jobs, convert, "Caltech Pedestrian", FPS, attrs, "Caltech videos")
    return 0
