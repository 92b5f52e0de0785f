"""BAIR robot pushing (``softmotion30_44k``; Ebert et al. 2017) from its TFRecords.

The archive's ``train/`` and ``test/`` folders hold ``traj_A_to_B.tfrecords`` files of
one ``tf.train.Example`` per trajectory: per step t (30 of them), ``t/image_aux1/encoded``
(raw 64x64x3 RGB bytes, not JPEG; ``--camera main`` takes ``t/image_main/encoded``),
``t/action`` (4 floats, the action at frame t) and ``t/endeffector_pos`` (3 floats, the
state). Splits follow SAVP (Lee et al. 2018), whose download script moves
``train/traj_256_to_511.tfrecords`` into ``val/``: that file becomes ``val`` (or, if RAW
already has a ``val/`` folder, that folder does), the rest of ``train/`` is ``train`` and
``test/`` is ``test``. Frames are stored as read, with no resizing. No TensorFlow.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from data_prep.common import add_source_arguments
from data_prep.tfrecord import StepFeatures
from vidgen.errors import VidgenError

SIDE = 64
SOURCE = "BAIR robot pushing"
VAL_FILE = "traj_256_to_511.tfrecords"  # the file SAVP's script moves from train/ to val/


def features(camera: str) -> StepFeatures:
    """The per-step keys of BAIR's records (4 action and 3 state floats), images from
    ``camera``."""
    image = f"{{}}/image_{camera}/encoded"
    return StepFeatures(image, "{}/action", "{}/endeffector_pos", 4, 3, "BAIR", SOURCE)


def raw_frame(pixels: bytes, where: str, key: str) -> np.ndarray:
    """A raw 64x64x3 RGB image feature as uint8 [64, 64, 3]."""
    if len(pixels) != SIDE * SIDE * 3:
        raise VidgenError(
            f"{where}: feature {key!r} holds {len(pixels)} bytes, not a raw "
            f"{SIDE}x{SIDE}x3 image ({SIDE * SIDE * 3} bytes)."
        )
    return np.frombuffer(pixels, np.uint8).reshape(SIDE, SIDE, 3)


def _by_number(path: Path) -> list[object]:
    """traj_256_to_511 after traj_0_to_255, not after traj_2304_to_2559."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def split_files(raw: Path) -> list[tuple[str, Path]]:
    """(split, file) of every TFRecord file, in SAVP's splits."""
    root = raw / "softmotion30_44k" if (raw / "softmotion30_44k").is_dir() else raw
    found: dict[str, list[Path]] = {}
    for split in ("train", "val", "test"):
        folder = root / split
        if split != "val" and not folder.is_dir():
            raise VidgenError(
                f"{root} lacks {split}/; --raw takes the softmotion30_44k folder (or its parent)."
            )
        found[split] = sorted(folder.glob("*.tfrecords"), key=_by_number)
        if split != "val" and not found[split]:
            raise VidgenError(f"{folder} holds no .tfrecords files (the {split} split).")
    if not found["val"]:
        found["val"] = [p for p in found["train"] if p.name == VAL_FILE]
        found["train"] = [p for p in found["train"] if p.name != VAL_FILE]
    if not found["val"]:
        raise VidgenError(f"{root} has neither val/ nor train/{VAL_FILE} (SAVP's val split).")
    return [(split, path) for split in ("train", "val", "test") for path in found[split]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser, "softmotion30_44k folder (train/, test/) or its parent")
    parser.add_argument(
        "--camera", choices=("aux1", "main"), default="aux1", help="image stream (SAVP: aux1)"
    )


def run(args: argparse.Namespace) -> int:
    raw = Path(args.raw)
    if not raw.is_dir():
        raise VidgenError(f"{raw} is not a folder; --raw takes the BAIR softmotion30_44k folder.")
    jobs = split_files(raw)
    attrs = {
        "rule": f"raw 64x64x3 RGB bytes of <t>/image_{args.camera}/encoded, stored as read",
        "splits": f"SAVP: val = {VAL_FILE} (or val/), train = the rest of train/, test = test/",
    }
    features(args.camera).write(args, jobs, raw_frame, "{path.stem}/{index:03d}", attrs)
    return 0
