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
from functools import partial
from pathlib import Path

import numpy as np

from data_prep.common import add_source_arguments, write_converted
from data_prep.tfrecord import Example, bytes_feature, convert_records, float_feature, step_count
from vidgen.errors import VidgenError

IMAGE = "{}/image_{}/encoded"
ACTION = "{}/action"
STATE = "{}/endeffector_pos"
ACTION_SIZE, STATE_SIZE, SIDE = 4, 3, 64
VAL_FILE = "traj_256_to_511.tfrecords"  # the file SAVP's script moves from train/ to val/
FPS = 10.0  # nominal: the records carry no frame rate (noted in the file attributes)

Episode = tuple[np.ndarray, np.ndarray, np.ndarray]


def episode(example: Example, where: str, camera: str) -> Episode:
    """(frames uint8 [T, 64, 64, 3] RGB, actions [T, 4], states [T, 3]) of one record."""
    steps = step_count(example, rf"(\d+)/image_{camera}/encoded$")
    if not steps:
        raise VidgenError(f"{where} has no <t>/image_{camera}/encoded features; is it BAIR data?")
    frames, actions, states = [], [], []
    for t in range(steps):
        key = IMAGE.format(t, camera)
        pixels = bytes_feature(example, key, where)
        if len(pixels) != SIDE * SIDE * 3:
            raise VidgenError(
                f"{where}: feature {key!r} holds {len(pixels)} bytes, not a raw "
                f"{SIDE}x{SIDE}x3 image ({SIDE * SIDE * 3} bytes)."
            )
        frames.append(np.frombuffer(pixels, np.uint8).reshape(SIDE, SIDE, 3))
        actions.append(float_feature(example, ACTION.format(t), where, ACTION_SIZE))
        states.append(float_feature(example, STATE.format(t), where, STATE_SIZE))
    return np.stack(frames), np.stack(actions), np.stack(states)


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
        "actions_feature": ACTION.format("<t>"),
        "states_feature": STATE.format("<t>"),
        "fps_note": "nominal; the source records carry no frame rate",
    }
    convert = partial(
        convert_records,
        convert=partial(episode, camera=args.camera),
        skip_bad=args.skip_bad,
        name_format="{path.stem}/{index:03d}",
    )
    write_converted(args, jobs, convert, "BAIR robot pushing", FPS, attrs, "BAIR files")
    return 0
