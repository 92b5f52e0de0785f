"""Frechet Video Distance (Unterthiner et al. 2018, arXiv:1812.01717) with a local I3D.

FVD is the Frechet distance between Gaussians fitted to I3D embeddings of real and of
generated clips. Nothing is downloaded: the user passes a TorchScript I3D file, e.g. the
port of the tf.hub Kinetics-400 network used by StyleGAN-V (``i3d_torchscript.pt``), which
agrees with the TensorFlow reference to 1e-6 in FVD.

Protocol (record it with every number; ``FVDProtocol.describe``): ``clips`` real and
``clips`` generated clips of the first ``frames`` frames (16 is the de-facto standard; VGAN
makes 32, score the first 16), frames resized bilinearly to 224x224 and scaled to [-1, 1],
embedded as the 400 Kinetics logits; real clips are windows of held-out videos.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from vidgen.errors import VidgenError

I3D_SIZE = 224
# Keyword arguments of the StyleGAN-V TorchScript I3D: inputs already resized and in [-1, 1],
# return the pre-softmax logits (the "features") rather than class probabilities.
STYLEGAN_V_KWARGS = {"rescale": False, "resize": False, "return_features": True}


def gaussian_statistics(features: Tensor) -> tuple[Tensor, Tensor]:
    """features [N, D] -> mean [D] and unbiased covariance [D, D], in float64."""
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need features [N >= 2, D], got shape {list(features.shape)}")
    features = features.double()
    return features.mean(0), torch.cov(features.T)


def _psd_sqrt(matrix: Tensor) -> Tensor:
    """Square root of a symmetric positive semi-definite matrix (negative rounding -> 0)."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) between two Gaussians.

    tr((S1 S2)^(1/2)) is computed as the trace of (S1^(1/2) S2 S1^(1/2))^(1/2): the same
    eigenvalues, but a symmetric matrix, so eigh is exact where sqrtm of S1 S2 is not.
    """
    mu1, mu2, sigma1, sigma2 = (x.double() for x in (mu1, mu2, sigma1, sigma2))
    root1 = _psd_sqrt(sigma1)
    cross = torch.linalg.eigvalsh(root1 @ sigma2 @ root1).clamp_min(0).sqrt().sum()
    value = (mu1 - mu2).pow(2).sum() + sigma1.trace() + sigma2.trace() - 2 * cross
    return float(value.clamp_min(0))


@dataclass(frozen=True)
class FVDProtocol:
    clips: int = 2048
    frames: int = 16
    resolution: int = I3D_SIZE

    def describe(self) -> str:
        return (
            f"fvd{self.clips}_{self.frames}f: {self.clips} real and {self.clips} generated "
            f"clips, first {self.frames} frames, bilinear {self.resolution}x{self.resolution}, "
            "[-1, 1], I3D Kinetics-400 logits"
        )


class I3DEmbedding:
    """A TorchScript I3D from a local file: videos [B, T, 3, H, W] in [0, 1] -> [B, D]."""

    def __init__(
        self,
        path: str | os.PathLike,
        device: str | torch.device = "cpu",
        call_kwargs: dict | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise VidgenError(
                f"I3D weights {self.path} do not exist; pass the path of a local TorchScript "
                "I3D file (e.g. StyleGAN-V's i3d_torchscript.pt), nothing is downloaded."
            )
        try:
            self.net = torch.jit.load(str(self.path), map_location=device).eval()
        except (RuntimeError, ValueError) as err:
            raise VidgenError(f"{self.path} is not a TorchScript I3D file ({err}).") from None
        self.device = torch.device(device)
        self.call_kwargs = STYLEGAN_V_KWARGS if call_kwargs is None else call_kwargs

    @torch.no_grad()
    def __call__(self, videos: Tensor, batch_size: int = 16) -> Tensor:
        out = []
        for chunk in videos.split(batch_size):
            b, t = chunk.shape[:2]
            frames = chunk.to(self.device, torch.float32).flatten(0, 1)  # (B T) C H W
            frames = F.interpolate(frames, size=(I3D_SIZE, I3D_SIZE), mode="bilinear")
            clip = (frames * 2 - 1).view(b, t, 3, I3D_SIZE, I3D_SIZE).transpose(1, 2)  # B C T H W
            out.append(self.net(clip, **self.call_kwargs).float().cpu())
        return torch.cat(out)


def clip_statistics(
    clips: Tensor, embed: I3DEmbedding, protocol: FVDProtocol, name: str = "generated"
) -> tuple[Tensor, Tensor]:
    """Mean and covariance of the I3D embeddings of [N, T, 3, H, W] clips in [0, 1], cut to
    ``protocol`` (which it checks; ``name`` says which clips fall short)."""
    if protocol.clips < 2:
        raise VidgenError(f"FVD needs at least 2 clips for a covariance, got {protocol.clips}.")
    if len(clips) < protocol.clips or clips.shape[1] < protocol.frames:
        raise VidgenError(
            f"{protocol.describe()} needs {protocol.clips} {name} clips of at least "
            f"{protocol.frames} frames, got {len(clips)} of {clips.shape[1]}."
        )
    return gaussian_statistics(embed(clips[: protocol.clips, : protocol.frames]))


def fvd(
    real: Tensor | tuple[Tensor, Tensor],
    generated: Tensor,
    embed: I3DEmbedding,
    protocol: FVDProtocol,
) -> dict[str, float | str]:
    """FVD of [N, T, 3, H, W] clips in [0, 1] under ``protocol`` (which it checks). ``real``
    may instead be its ``clip_statistics``, so several generated sets embed it once."""
    reference = real if isinstance(real, tuple) else clip_statistics(real, embed, protocol, "real")
    stats = clip_statistics(generated, embed, protocol)
    return {"fvd": frechet_distance(*reference, *stats), "protocol": protocol.describe()}
