"""The Google robot-push dataset (Finn, Goodfellow & Levine 2016) from its TFRecords.

Folders ``push_train``, ``push_testseen`` and ``push_testnovel`` (the bucket's
``push/`` layout, or directly under RAW) become ``train``, ``test_seen`` and
``test_novel``; ``val`` is the last 5% of the ``push_train`` files in name order, as SAVP
keeps the first 95% for training. Each ``tf.train.Example`` is one episode: per step t,
``move/t/image/encoded`` (JPEG, 640x512) is decoded to RGB, centre-cropped to a square
and area-downsampled to 64x64 (SAVP's ``scale_size=64`` rule, not upstream's aspect-
changing squash), ``move/t/commanded_pose/vec_pitch_yaw`` (5 floats) is the action and
``move/t/endeffector/vec_pitch_yaw`` (5 floats) the state at frame t. No TensorFlow.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import numpy as np

from data_prep.common import add_source_arguments, decode_frame
from data_prep.tfrecord import StepFeatures
from vidgen.errors import VidgenError

FOLDERS = {"push_train": "train", "push_testseen": "test_seen", "push_testnovel": "test_novel"}
POSE_SIZE = 5
FEATURES = StepFeatures(
    "move/{}/image/encoded",
    "move/{}/commanded_pose/vec_pitch_yaw",
    "move/{}/endeffector/vec_pitch_yaw",
    POSE_SIZE,
    POSE_SIZE,
    "push",
    "Google push",
)


def jpeg_frame(jpeg: bytes, where: str, key: str, size: int) -> np.ndarray:
    """A JPEG image feature as uint8 [size, size, 3] RGB."""
    # Covering a square and centre-cropping is the centre square crop, then INTER_AREA.
    return decode_frame(jpeg, f"{where}, {key}", (size, size))


def split_files(raw: Path, val_frac: float) -> list[tuple[str, Path]]:
    """(split, file) of every TFRecord file, train's last ``val_frac`` of files as val."""
    root = raw / "push" if (raw / "push" / "push_train").is_dir() else raw
    jobs: list[tuple[str, Path]] = []
    for folder, split in FOLDERS.items():
        if not (root / folder).is_dir():
            raise VidgenError(
                f"{root} lacks {folder}/ (the {split} split); --raw takes the folder holding "
                "push_train, push_testseen and push_testnovel."
            )
        files = sorted(p for p in (root / folder).iterdir() if p.is_file())
        files = [p for p in files if not p.name.startswith(".")]
        if not files:
            raise VidgenError(f"{root / folder} holds no TFRecord files (the {split} split).")
        if split == "train":
            keep = max(1, int(len(files) * (1 - val_frac)))
            jobs += [("train", p) for p in files[:keep]] + [("val", p) for p in files[keep:]]
        else:
            jobs += [(split, p) for p in files]
    return jobs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser, "folder holding push_train, push_testseen, push_testnovel")
    parser.add_argument("--size", type=int, default=64, help="side of the square frames")
    parser.add_argument(
        "--val-frac", type=float, default=0.05, help="fraction of push_train files held out"
    )


def run(args: argparse.Namespace) -> int:
    raw = Path(args.raw)
    if not raw.is_dir():
        raise VidgenError(f"{raw} is not a folder; --raw takes the push dataset folder.")
    if args.size <= 0 or not 0 <= args.val_frac < 1:
        raise VidgenError("--size must be positive and --val-frac lie in [0, 1).")
    jobs = split_files(raw, args.val_frac)
    attrs = {
        "rule": "JPEG 640x512 decoded to RGB, centre-cropped to a square, cv2 INTER_AREA "
        f"downsampled to {args.size}x{args.size} (SAVP's scale_size rule)",
        "splits": "push_train -> train (first 95% of files by name) and val (the rest); "
        "push_testseen -> test_seen; push_testnovel -> test_novel",
    }
    frame = partial(jpeg_frame, size=args.size)
    FEATURES.write(args, jobs, frame, "{path.name}/{index:04d}", attrs)
    return 0
