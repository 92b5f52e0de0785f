"""Rollout rendering throughput: video frames per second of grid building and mp4 encoding,
as ratios to baselines measured in the same run on the same frames.

Grids are the vidgen-rollout layout (context | truth | prediction | error, one row per clip)
of bouncing-ball renders at 64x64 (upscaled 2x for viewing) and 128x160 (as is). Measured:

    grid        video_grid: panels -> uint8 frames
    write_mp4   our encode path (uint8 check, even padding, H.264 yuv420p crf 18, +faststart,
                temporary file and rename)
    raw x264    the same frames through bare PyAV libx264 with the same settings (baseline)
    png         the same frames written as PNG files with OpenCV (the other baseline)

    python -m benchmarks.render [--frames 60 --clips 4 --repeats 3]

Record: benchmarks/results/render.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from benchmarks.record import Run, parser, settings
from vidgen.sim import WORLDS
from vidgen.viz.grid import rollout_panels, video_grid
from vidgen.viz.video import DEFAULT_CRF, write_mp4

FPS = 10
SIZES = {"64x64": (64, 64), "128x160": (128, 160)}


def clips(size: tuple[int, int], count: int, frames: int) -> torch.Tensor:
    """[B, T, 3, H, W] float bouncing-ball renders."""
    runs = [WORLDS["bouncing_balls"](num_frames=frames, size=size, seed=s) for s in range(count)]
    video = torch.from_numpy(np.stack([r["frames"] for r in runs]))  # B T H W 3
    return video.permute(0, 1, 4, 2, 3).float() / 255


def raw_x264(frames: np.ndarray, path: Path) -> None:
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(FPS))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(DEFAULT_CRF), "preset": "medium"}
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def pngs(frames: np.ndarray, folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    for i, image in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def best_rate(work: Callable[[], object], frames: int, repeats: int) -> float:
    """Frames per second of the fastest of ``repeats`` runs (least disturbed by neighbours)."""
    seconds = []
    for _ in range(repeats):
        begin = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - begin)
    return frames / min(seconds)


def measure(size: tuple[int, int], args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    context = args.frames // 3
    truth = clips(size, args.clips, args.frames)
    # A plausible prediction: the truth one frame late (what a blurry model gets right).
    predictions = truth[:, context - 1 : -1]
    panels = rollout_panels(truth, predictions, context)
    grid = video_grid(panels, context)
    rates = {
        "grid": best_rate(lambda: video_grid(panels, context), args.frames, args.repeats),
        "write_mp4": best_rate(
            lambda: write_mp4(grid, tmp / "ours.mp4", FPS), args.frames, args.repeats
        ),
        "raw_x264": best_rate(lambda: raw_x264(grid, tmp / "raw.mp4"), args.frames, args.repeats),
        "png": best_rate(lambda: pngs(grid, tmp / "png"), args.frames, args.repeats),
    }
    end_to_end = 1 / (1 / rates["grid"] + 1 / rates["write_mp4"])
    return {
        "grid_shape": list(grid.shape[1:]),
        **{f"{name}_fps": round(rate, 1) for name, rate in rates.items()},
        "grid_plus_mp4_fps": round(end_to_end, 1),
        "write_mp4_vs_raw_x264": round(rates["write_mp4"] / rates["raw_x264"], 3),
        "grid_plus_mp4_vs_png": round(end_to_end / rates["png"], 3),
        "mp4_bytes_per_frame": round((tmp / "ours.mp4").stat().st_size / args.frames),
    }


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--frames", type=int, default=60, help="video frames per clip")
    args_parser.add_argument("--clips", type=int, default=4, help="rows of the grid")
    args_parser.add_argument("--repeats", type=int, default=3)
    args = args_parser.parse_args()
    run = Run(args.results)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        results = {name: measure(size, args, Path(tmp)) for name, size in SIZES.items()}
    for name, r in results.items():
        print(
            f"{name}: grid {r['grid_fps']} fps, write_mp4 {r['write_mp4_fps']} fps "
            f"({r['write_mp4_vs_raw_x264']}x bare PyAV), grid + mp4 "
            f"{r['grid_plus_mp4_vs_png']}x PNG files"
        )
    protocol = {
        "figures": f"{args.clips} bouncing-ball clips of {args.frames} frames per size, the "
        f"fastest of {args.repeats} repeats; bare PyAV libx264 and OpenCV PNG files encode the "
        "same grid frames in the same run as the baselines"
    }
    run.write("render", results, protocol, settings(args))


if __name__ == "__main__":
    main()
