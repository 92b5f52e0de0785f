"""Browser-playable mp4 through PyAV: H.264 (libx264), yuv420p, ``+faststart``.

H.264 in mp4 is the one combination every browser plays; yuv420p halves the chroma
resolution, so libx264 needs even frame sizes (odd ones are padded here, never resized);
``+faststart`` moves the index to the front so a page can start playing before the file
is fully loaded. The file appears under its name only once it is complete.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from vidgen.errors import VidgenError

# Visually lossless for the flat synthetic renders and small enough for a report.
DEFAULT_CRF = 18


def to_uint8_frames(frames: np.ndarray | torch.Tensor) -> np.ndarray:
    """uint8 or float [0, 1] frames, [T, H, W, C] or [T, C, H, W] with C in {1, 3}
    -> contiguous uint8 [T, H, W, 3]."""
    if isinstance(frames, torch.Tensor):
        if frames.is_floating_point():
            # Quantize in torch: threaded and fused, several times faster than numpy here.
            scaled = frames.detach().nan_to_num(0.5).clamp_(0, 1).mul_(255).add_(0.5)
            frames = scaled.to(torch.uint8)
        frames = frames.cpu().numpy()
    frames = np.asarray(frames)
    if frames.ndim != 4 or (frames.shape[-1] not in (1, 3) and frames.shape[1] not in (1, 3)):
        raise VidgenError(
            f"frames must be [T, H, W, 3] or [T, 3, H, W], got shape {list(frames.shape)}."
        )
    if len(frames) == 0:
        raise VidgenError("there are no frames to write.")
    if frames.shape[-1] not in (1, 3):
        frames = frames.transpose(0, 2, 3, 1)  # T C H W -> T H W C
    if frames.dtype != np.uint8:
        if not np.issubdtype(frames.dtype, np.floating):
            raise VidgenError(f"frames must be uint8 or float in [0, 1], got {frames.dtype}.")
        frames = (np.nan_to_num(frames, nan=0.5).clip(0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    return np.ascontiguousarray(frames)


def upscale_frames(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of [T, H, W, C] by an integer factor: pixels stay sharp."""
    if factor < 1:
        raise VidgenError(f"upscale must be a positive integer, got {factor}.")
    if factor == 1:
        return frames
    return frames.repeat(factor, axis=1).repeat(factor, axis=2)


def pad_to_even(frames: np.ndarray) -> np.ndarray:
    """Pad [T, H, W, 3] with black on the bottom / right so H and W are even (yuv420p)."""
    height, width = frames.shape[1:3]
    if height % 2 == 0 and width % 2 == 0:
        return frames
    return np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)))


def write_mp4(
    frames: np.ndarray | torch.Tensor,
    path: str | os.PathLike,
    fps: float,
    upscale: int = 1,
    crf: int = DEFAULT_CRF,
) -> Path:
    """Encode ``frames`` (see ``to_uint8_frames``) as a browser-playable mp4 at ``path``."""
    if not fps > 0:
        raise VidgenError(f"fps must be positive, got {fps}.")
    pixels = pad_to_even(upscale_frames(to_uint8_frames(frames), upscale))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    # 29.97 and friends are 30000/1001; a float rate would drift.
    rate = Fraction(fps).limit_denominator(1001)
    try:
        with av.open(
            str(partial), mode="w", format="mp4", options={"movflags": "+faststart"}
        ) as container:
            stream = container.add_stream("libx264", rate=rate)
            stream.height, stream.width = pixels.shape[1:3]
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(crf), "preset": "medium"}
            for image in pixels:
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode())  # flush the encoder's delayed frames
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path
