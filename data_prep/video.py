"""Import video files (anything OpenCV decodes) or folders of PNG/JPG frames.

Frames are resized to cover H x W keeping their aspect, centre-cropped, and stored RGB.
Several videos are split into train/val/test by whole video; a single video is split in
time into contiguous segments with the test part last, so no test frame is ever trained on.

``--stabilize`` removes camera motion as VGAN's preprocessing does (``data_prep.stabilize``):
each video is cut into clips of ``--clip-frames`` at full resolution, each clip is warped
into its first frame's coordinates, clips where that fails are dropped, and every kept clip
becomes an episode (a single video's clips are split in time, test last).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from data_prep.common import SplitWriter, parse_size, progress, report_skipped, resize_crop
from data_prep.stabilize import Stabilizer
from vidgen.errors import VidgenError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}
# A video may decode to this many frames fewer than its container declares (or this
# fraction of them, if more) before it counts as truncated.
TRUNCATION_SLACK_FRAMES, TRUNCATION_SLACK = 2, 0.05


def _read_video(path: Path) -> tuple[Iterator[np.ndarray], float]:
    """BGR frames of a video file and its fps; one clear error if OpenCV cannot decode it,
    or if it decodes to fewer frames than its container declares (a truncated file)."""
    capture = cv2.VideoCapture(str(path))
    ok, first = capture.read() if capture.isOpened() else (False, None)
    if not ok:
        capture.release()
        raise VidgenError(f"{path} cannot be decoded as a video.")
    fps = capture.get(cv2.CAP_PROP_FPS)
    declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))

    def frames() -> Iterator[np.ndarray]:
        yield first
        decoded = 1
        while True:
            ok, frame = capture.read()
            if not ok:
                capture.release()
                break
            decoded += 1
            yield frame
        # A container's count can be an estimate from its duration: allow a little slack.
        if declared - decoded > max(TRUNCATION_SLACK_FRAMES, TRUNCATION_SLACK * declared):
            raise VidgenError(
                f"{path} decoded to {decoded} of the {declared} frames its container declares; "
                "it is truncated or corrupt."
            )

    return frames(), fps


def _read_image_folder(path: Path) -> Iterator[np.ndarray]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise VidgenError(f"{path} holds no PNG or JPG frames.")
    first_shape = None
    for file in files:
        frame = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if frame is None:
            raise VidgenError(f"{file} cannot be decoded as an image.")
        first_shape = first_shape or frame.shape
        if frame.shape != first_shape:
            (h, w), (first_h, first_w) = frame.shape[:2], first_shape[:2]
            raise VidgenError(
                f"{file} is {h}x{w} but {files[0].name} is {first_h}x{first_w}; the frames of "
                f"{path} must all have one size."
            )
        yield frame


def load_video(
    path: Path, size: tuple[int, int] | None, fps: float | None, folder_fps: float
) -> tuple[np.ndarray, float]:
    """One source as uint8 RGB [T, H, W, 3] at ``fps`` (nearest-frame resampling)."""
    if path.is_dir():
        frames, source_fps = _read_image_folder(path), folder_fps
    else:
        frames, source_fps = _read_video(path)
    source_fps = source_fps if source_fps and source_fps > 0 else folder_fps
    out = []
    for frame in frames:
        if size is not None:
            frame = resize_crop(frame, *size)
        out.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    clip = np.stack(out)
    if fps is not None and fps != source_fps:
        # Output frame j shows time j / fps: take the source frame nearest that time.
        count = int(len(clip) * fps / source_fps)
        picks = np.minimum(np.round(np.arange(count) * source_fps / fps), len(clip) - 1)
        clip = clip[picks.astype(np.int64)]
    return clip, fps or source_fps


def split_sources(count: int, val_frac: float, test_frac: float) -> list[str]:
    """The split of each of ``count`` sources in order: train first, test last."""
    test = round(count * test_frac)
    val = round(count * val_frac)
    if count - val - test < 1:
        raise VidgenError(f"{count} videos leave none for training at these fractions.")
    return ["train"] * (count - val - test) + ["val"] * val + ["test"] * test


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="video files or folders of frames")
    parser.add_argument("--out", required=True, help="dataset folder to create")
    parser.add_argument("--size", help="HxW after resize and centre crop (default: as read)")
    parser.add_argument("--fps", type=float, help="resample to this frame rate")
    parser.add_argument("--folder-fps", type=float, default=10.0, help="fps of frame folders")
    parser.add_argument("--val-frac", type=float, default=0.1)
    parser.add_argument("--test-frac", type=float, default=0.1)
    parser.add_argument("--force", action="store_true", help="overwrite an existing dataset")
    parser.add_argument(
        "--skip-bad", action="store_true", help="skip and report unreadable or truncated inputs"
    )
    parser.add_argument(
        "--stabilize", action="store_true", help="remove camera motion (SIFT + RANSAC homographies)"
    )
    parser.add_argument(
        "--clip-frames", type=int, default=32, help="frames per stabilized clip (default 32)"
    )


def run(args: argparse.Namespace) -> int:
    for frac in (args.val_frac, args.test_frac):
        if not 0 <= frac < 1:
            raise VidgenError(f"split fractions must lie in [0, 1), got {frac}.")
    if args.val_frac + args.test_frac >= 1:
        raise VidgenError(
            f"--val-frac {args.val_frac} and --test-frac {args.test_frac} add up to "
            f"{args.val_frac + args.test_frac:g}, leaving nothing to train on; keep their sum "
            "below 1."
        )
    if args.fps is not None and args.fps <= 0:
        raise VidgenError(f"--fps must be positive, got {args.fps}.")
    size = parse_size(args.size) if args.size else None
    paths = sorted({Path(p) for p in args.inputs})
    for path in paths:
        if not path.exists():
            raise VidgenError(f"{path} does not exist.")
    if args.stabilize and args.clip_frames < 2:
        raise VidgenError(f"--clip-frames must be at least 2, got {args.clip_frames}.")
    # Stabilize at full resolution, where SIFT finds features; resize the kept clips after.
    read_size = None if args.stabilize else size
    clips, readable, problems = [], [], []
    for path in progress(paths, "reading"):
        try:
            clips.append(load_video(path, read_size, args.fps, args.folder_fps))
            readable.append(path)
        except VidgenError as err:
            if not args.skip_bad:
                raise
            problems.append(str(err))
    report_skipped(problems)
    if not clips:
        raise VidgenError("none of the inputs could be read; see the skipped items above.")
    paths = readable
    shapes = {clip.shape[1:] for clip, _ in clips}
    if len(shapes) > 1:
        raise VidgenError("the videos differ in frame size; pass --size HxW to make them agree.")
    rates = {fps for _, fps in clips}
    if len(rates) > 1:
        raise VidgenError("the videos differ in frame rate; pass --fps to resample them.")
    source = "video:" + ",".join(p.name for p in paths)
    if args.stabilize:
        episodes = stabilized_episodes(paths, [clip for clip, _ in clips], size, args.clip_frames)
        with SplitWriter(args.out, fps=rates.pop(), source=source, force=args.force) as writer:
            if len(paths) == 1:  # one video: its clips split in time, test last
                splits = split_sources(len(episodes), args.val_frac, args.test_frac)
            else:
                of_video = split_sources(len(paths), args.val_frac, args.test_frac)
                by_path = dict(zip(paths, of_video, strict=True))
                splits = [by_path[path] for path, _, _ in episodes]
            for (_, name, clip), split in zip(episodes, splits, strict=True):
                writer.add(split, name, clip)
        print(f"wrote {', '.join(sorted(writer.writers))} to {args.out}")
        return 0
    with SplitWriter(args.out, fps=rates.pop(), source=source, force=args.force) as writer:
        if len(clips) == 1:
            clip, n = clips[0][0], len(clips[0][0])
            train_end = round(n * (1 - args.val_frac - args.test_frac))
            val_end = train_end + round(n * args.val_frac)
            segments = {"train": (0, train_end), "val": (train_end, val_end), "test": (val_end, n)}
            for split, (start, stop) in segments.items():
                if stop > start:
                    writer.add(split, f"{paths[0].stem}/{split}", clip[start:stop])
        else:
            splits = split_sources(len(clips), args.val_frac, args.test_frac)
            for path, (clip, _), split in zip(paths, clips, splits, strict=True):
                writer.add(split, path.stem, clip)
    print(f"wrote {', '.join(sorted(writer.writers))} to {args.out}")
    return 0


def stabilized_episodes(
    paths: list[Path], videos: list[np.ndarray], size: tuple[int, int] | None, clip_frames: int
) -> list[tuple[Path, str, np.ndarray]]:
    """(source, episode name, clip) of every clip that stabilizes, resized to ``size``."""
    stabilizer, episodes, dropped, total = Stabilizer(), [], 0, 0
    for path, video in progress(list(zip(paths, videos, strict=True)), "stabilizing"):
        kept, failed = stabilizer.clips(video, clip_frames)
        dropped, total = dropped + failed, total + failed + len(kept)
        for number, clip in enumerate(kept):
            if size is not None:
                clip = np.stack([resize_crop(frame, *size) for frame in clip])
            episodes.append((path, f"{path.stem}/clip{number:04d}", clip))
    print(f"stabilization kept {total - dropped} of {total} clips of {clip_frames} frames")
    if not episodes:
        raise VidgenError(f"no clip of {clip_frames} frames could be stabilized.")
    return episodes
