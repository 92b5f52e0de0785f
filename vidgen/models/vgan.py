"""Two-stream video GAN: Vondrick, Pirsiavash & Torralba (2016), "Generating Videos with Scene
Dynamics", NIPS, arXiv:1609.02612; layer sizes from the released Torch code
(cvondrick/videogan ``main.lua``, ``main_conditional.lua``).

The generator draws a moving foreground with 3-D fractionally-strided convolutions, ending in
a tanh video f and a sigmoid mask m, and a static background b with 2-D ones; the video is
m * f + (1 - m) * b with b repeated over time. The discriminator is a 3-D conv net. Every
stride-2 layer doubles (or halves) T, H and W, so ``size`` fixes the depth: log2(size / 4)
layers from 4x4, and the first (last) layer's time kernel, frames / 2^depth, fixes the
length. The paper's 32 frames at 64x64 is depth 4 with a time kernel of 2; ``channels``
scales every width for CPU configs. Videos are ``B T C H W`` in [-1, 1] at the interfaces.

Optional discriminator stabilisers, off by default (the paper's D):

- spectral normalization of every conv: Miyato, Kataoka, Koyama & Yoshida (2018), "Spectral
  Normalization for Generative Adversarial Networks", ICLR, arXiv:1802.05957;
- minibatch standard deviation before the last conv: Karras, Aila, Laine & Lehtinen (2018),
  "Progressive Growing of GANs for Improved Quality, Stability, and Variation", ICLR,
  arXiv:1710.10196;
- no batch norm (``batch_norm=False``), as usual with either of those or an R1 penalty;
- a per-frame 2-D discriminator beside the 3-D one (``frame_samples``), DVD-GAN's spatial
  discriminator: Clark, Donahue & Simonyan (2019), "Adversarial Video Generation on Complex
  Datasets", arXiv:1907.06571, after MoCoGAN's image discriminator (Tulyakov et al. 2018);
- a hidden layer before the logit (``head_width``), as StyleGAN's discriminator ends.

The unconditional generator and the discriminator can also attend (``attention_side``): one
self-attention block where their features are that many pixels wide, after Zhang,
Goodfellow, Metaxas & Odena (2019), "Self-Attention Generative Adversarial Networks", ICML,
arXiv:1805.08318.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class VideoParts(NamedTuple):
    """A generated video and what it is made of, all ``[B, T, C, H, W]``."""

    video: Tensor  # m * f + (1 - m) * b, in [-1, 1]
    foreground: Tensor  # f, in [-1, 1]
    background: Tensor  # b repeated over T, in [-1, 1]
    mask: Tensor  # m, one channel, in [0, 1]


def vgan_depth(frames: int, size: int) -> tuple[int, int]:
    """(stride-2 layers, time kernel of the 4x4 end) for ``frames`` x ``size`` x ``size``."""
    depth = round(math.log2(size / 4)) if size >= 8 else 0
    if depth < 1 or 4 * 2**depth != size:
        raise ValueError(f"size must be 4 times a power of two (8, 16, 32, 64, ...), got {size}")
    if frames % 2**depth:
        raise ValueError(f"frames must be a multiple of {2**depth} at size {size}, got {frames}")
    return depth, frames // 2**depth


def init_vgan_weights(module: nn.Module) -> None:
    """The released code's init: conv weights N(0, 0.01), zero biases, BN gamma N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _up(dims: int, cin: int, cout: int, kernel: int | tuple = 4, stride: int = 2, pad: int = 1):
    """Fractionally-strided conv, batch norm, ReLU: every hidden generator layer."""
    conv = nn.ConvTranspose3d if dims == 3 else nn.ConvTranspose2d
    norm = nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d
    return nn.Sequential(conv(cin, cout, kernel, stride, pad), norm(cout), nn.ReLU(inplace=True))


class SelfAttention(nn.Module):
    """SAGAN's block over every position of x [B, C, ...]: x + gamma * softmax(q^T k) v, with
    C/8-channel queries and keys and gamma starting at 0, so a new block is the identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = max(channels // 8, 1)
        self.query, self.key = nn.Conv1d(channels, inner, 1), nn.Conv1d(channels, inner, 1)
        self.value = nn.Conv1d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        tokens = x.flatten(2)  # B C N
        q, k, v = (f(tokens).transpose(1, 2) for f in (self.query, self.key, self.value))
        attended = F.scaled_dot_product_attention(q, k, v, scale=1.0)  # B N C, unscaled as SAGAN
        return x + self.gamma * attended.transpose(1, 2).view_as(x)


def _attended_block(sides: list[int], side: int) -> int | None:
    """Which block, of blocks ``sides`` pixels wide, a SelfAttention follows (``side`` 0: none)."""
    if not side:
        return None
    if side not in sides:
        raise ValueError(f"attention_side must be 0 or one of {sides}, got {side}")
    return sides.index(side)


class TwoStreamDecoder(nn.Module):
    """Foreground (3-D, tanh video + sigmoid mask) and background (2-D, tanh) streams.

    ``fg_stem`` / ``bg_stem`` bring the code to ``widths[0]`` channels at 4x4; each later width
    is one stride-2 layer; the output heads make the last doubling. ``attention_side``: see
    the module docstring (the foreground stream only).
    """

    def __init__(
        self, fg_stem: nn.Module, bg_stem: nn.Module, widths: list[int], attention_side: int = 0
    ) -> None:
        super().__init__()
        pairs = list(zip(widths[:-1], widths[1:], strict=True))
        layers = [fg_stem, *(_up(3, a, b) for a, b in pairs)]
        attended = _attended_block([4 * 2**i for i in range(len(widths))], attention_side)
        if attended is not None:
            layers.insert(attended + 1, SelfAttention(widths[attended]))
        self.foreground = nn.Sequential(*layers)
        self.background = nn.Sequential(bg_stem, *(_up(2, a, b) for a, b in pairs))
        self.video_head = nn.ConvTranspose3d(widths[-1], 3, 4, 2, 1)
        self.mask_head = nn.ConvTranspose3d(widths[-1], 1, 4, 2, 1)
        self.background_head = nn.ConvTranspose2d(widths[-1], 3, 4, 2, 1)

    def forward(self, fg_code: Tensor, bg_code: Tensor) -> VideoParts:
        """fg_code [B, C, T0, h, w], bg_code [B, C', h', w'] -> parts [B, T, C, H, W]."""
        hidden = self.foreground(fg_code)  # B C T/2 H/2 W/2
        foreground = torch.tanh(self.video_head(hidden)).transpose(1, 2)  # B T 3 H W
        mask = torch.sigmoid(self.mask_head(hidden)).transpose(1, 2)  # B T 1 H W
        background = torch.tanh(self.background_head(self.background(bg_code)))  # B 3 H W
        background = background.unsqueeze(1).expand_as(foreground)
        video = mask * foreground + (1 - mask) * background
        return VideoParts(video, foreground, background, mask)


class VideoGenerator(nn.Module):
    """Unconditional generator: z [B, z_dim] ~ N(0, I) -> video. Paper: widths 512-256-128-64."""

    def __init__(
        self,
        frames: int = 32,
        size: int = 64,
        z_dim: int = 100,
        channels: int = 64,
        attention_side: int = 0,
    ) -> None:
        super().__init__()
        self.frames, self.size, self.z_dim = frames, size, z_dim
        depth, time_kernel = vgan_depth(frames, size)
        widths = [channels * 2 ** (depth - 1 - i) for i in range(depth)]
        fg_stem = _up(3, z_dim, widths[0], (time_kernel, 4, 4), 1, 0)  # z as z_dim x 1x1x1
        bg_stem = _up(2, z_dim, widths[0], 4, 1, 0)
        self.decoder = TwoStreamDecoder(fg_stem, bg_stem, widths, attention_side)
        init_vgan_weights(self)

    def forward(self, z: Tensor) -> VideoParts:
        code = z.view(len(z), self.z_dim, 1, 1)
        return self.decoder(code.unsqueeze(2), code)

    def sample_noise(self, num: int, generator: torch.Generator | None = None) -> Tensor:
        device = self.decoder.video_head.weight.device
        return torch.randn(num, self.z_dim, generator=generator, device=device)


class FutureGenerator(nn.Module):
    """Conditional generator (``main_conditional.lua``): one frame [B, 3, H, W] -> video.

    A 2-D encoder (paper: 128-256-512-1024, no BN on the first layer) replaces z; its 4x4 code
    seeds the background decoder directly and the foreground after a (T0, 1, 1) time kernel.
    """

    def __init__(self, frames: int = 32, size: int = 64, channels: int = 128) -> None:
        super().__init__()
        self.frames, self.size = frames, size
        depth, time_kernel = vgan_depth(frames, size)
        enc = [channels * 2**i for i in range(depth)]
        layers: list[nn.Module] = [nn.Conv2d(3, enc[0], 4, 2, 1), nn.ReLU(inplace=True)]
        for a, b in zip(enc[:-1], enc[1:], strict=True):
            layers += [nn.Conv2d(a, b, 4, 2, 1), nn.BatchNorm2d(b, eps=1e-3), nn.ReLU(inplace=True)]
        self.encoder = nn.Sequential(*layers)
        code = enc[-1]
        fg_stem = _up(3, code, code, (time_kernel, 1, 1), 1, 0)  # 1x4x4 -> T0x4x4
        self.decoder = TwoStreamDecoder(fg_stem, nn.Identity(), [code, *enc[-2::-1]])
        init_vgan_weights(self)

    def forward(self, image: Tensor) -> VideoParts:
        code = self.encoder(image)  # B C 4 4
        return self.decoder(code.unsqueeze(2), code)


class MinibatchStd(nn.Module):
    """Karras et al. (2018)'s minibatch standard deviation, [B, C, ...] -> [B, C+1, ...].

    Items form groups of ``min(group_size, B)`` (the whole batch when that does not divide B);
    each feature's std over its group, averaged to one number, becomes an extra constant
    channel of every member, so D can see a batch's lack of variety.
    """

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x: Tensor) -> Tensor:
        batch = len(x)
        group = min(self.group_size, batch)
        if batch % group:
            group = batch
        # G M C ..., grouped as Karras et al.'s code does: item i is in group i % M.
        grouped = x.view(group, -1, *x.shape[1:])
        std = (grouped.var(dim=0, unbiased=False) + 1e-8).sqrt().flatten(1).mean(1)  # M
        std = std.repeat(group).view(batch, 1, *[1] * (x.dim() - 2))
        return torch.cat([x, std.expand(-1, 1, *x.shape[2:])], dim=1)


def _judge(
    dims: int,
    size: int,
    widths: list[int],
    head: tuple,
    batch_norm: bool,
    minibatch_std: bool,
    attention_side: int,
    head_width: int,
) -> nn.Sequential:
    """DCGAN discriminator in ``dims`` (2 or 3) dimensions: stride-2 convs of ``widths`` from
    ``size`` pixels, LeakyReLU 0.2, BN (eps 1e-3) on all but the first, one logit from a
    ``head``-sized conv (or, with ``head_width``, that many features, LeakyReLU, a linear map)."""
    conv = nn.Conv3d if dims == 3 else nn.Conv2d
    norm = nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d
    stages = [[conv(3, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]]
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        norms = [norm(b, eps=1e-3)] if batch_norm else []
        stages.append([conv(a, b, 4, 2, 1), *norms, nn.LeakyReLU(0.2, True)])
    attended = _attended_block([size >> (i + 1) for i in range(len(widths))], attention_side)
    if attended is not None:
        stages[attended].append(SelfAttention(widths[attended]))
    layers = [layer for stage in stages for layer in stage]
    if minibatch_std:
        layers.append(MinibatchStd())
    features = widths[-1] + int(minibatch_std)
    if head_width:
        layers += [conv(features, head_width, head), nn.LeakyReLU(0.2, True)]
        features, head = head_width, 1  # a 1x1 conv on the 1x1 map: linear
    layers.append(conv(features, 1, head))
    return nn.Sequential(*layers)


class VideoDiscriminator(nn.Module):
    """3-D conv net, video [B, T, 3, H, W] -> one real/fake logit each [B].

    Paper widths 64-128-256-512 (128-... for the conditional model), LeakyReLU 0.2, BN
    (eps 1e-3) on all but the first layer. The released 2-way softmax is one logit here:
    softmax over (a, b) equals sigmoid(a - b), so the losses are the same. ``spectral_norm``,
    ``minibatch_std``, ``batch_norm=False`` and ``attention_side`` are the stabilisers of the
    module docstring.

    The paper's last conv sums a linear score over D's last 4x4 positions. Where those
    features count objects locally, the sum cannot prefer one ball of each colour to two blue
    and no red: counts (1, 1, 1) are the midpoint of (2, 1, 0) and (0, 1, 2), and a linear
    score at a midpoint cannot exceed both ends. ``head_width`` > 0 makes that conv give
    ``head_width`` features, then LeakyReLU and a linear logit, as StyleGAN's discriminator
    ends (Karras, Laine & Aila 2019, arXiv:1812.04948).

    ``frame_samples`` > 0 adds DVD-GAN's spatial judge: a 2-D net of the same widths scores
    that many distinct random frames of each clip, and its logit is their sum. The output is
    then [B, 2], the clip's (video, frames) logits, and the losses add the two judges' terms.
    """

    def __init__(
        self,
        frames: int = 32,
        size: int = 64,
        channels: int = 64,
        spectral_norm: bool = False,
        minibatch_std: bool = False,
        batch_norm: bool = True,
        frame_samples: int = 0,
        attention_side: int = 0,
        head_width: int = 0,
    ) -> None:
        super().__init__()
        if head_width < 0:
            raise ValueError(
                f"head_width must be 0 (the paper's linear head) or more, got {head_width}"
            )
        if not 0 <= frame_samples <= frames:
            raise ValueError(f"frame_samples must be in [0, {frames}], got {frame_samples}")
        self.options = {
            "frames": frames,
            "size": size,
            "channels": channels,
            "spectral_norm": spectral_norm,
            "minibatch_std": minibatch_std,
            "batch_norm": batch_norm,
            "frame_samples": frame_samples,
            "attention_side": attention_side,
            "head_width": head_width,
        }
        depth, time_kernel = vgan_depth(frames, size)
        widths = [channels * 2**i for i in range(depth)]
        judge = {
            "size": size,
            "widths": widths,
            "batch_norm": batch_norm,
            "minibatch_std": minibatch_std,
            "attention_side": attention_side,
            "head_width": head_width,
        }
        self.net = _judge(3, head=(time_kernel, 4, 4), **judge)
        self.frame_samples = frame_samples
        self.frame_net = None
        if frame_samples:
            self.frame_net = _judge(2, head=(4, 4), **judge)
        init_vgan_weights(self)
        if spectral_norm:  # after the init: it normalizes the initialized weights
            for layer in self.modules():
                if isinstance(layer, nn.modules.conv._ConvNd):
                    nn.utils.parametrizations.spectral_norm(layer)

    def forward(self, video: Tensor) -> Tensor:
        logits = self.net(video.transpose(1, 2)).flatten()  # B C T H W -> [B]
        if self.frame_net is None:
            return logits
        batch, length = video.shape[:2]
        # k distinct frames per clip, drawn afresh each call.
        picks = torch.rand(batch, length, device=video.device).argsort(1)[:, : self.frame_samples]
        frames = video[torch.arange(batch, device=video.device)[:, None], picks]  # B k C H W
        frame_logits = self.frame_net(frames.flatten(0, 1)).view(batch, -1).sum(1)
        return torch.stack([logits, frame_logits], dim=1)

    def __reduce_ex__(self, protocol: int):
        # torch pickles spectral-norm (parametrized) layers only through their state_dict, and
        # spawned DDP workers get a pickled model: D then travels as its options and weights.
        if not self.options["spectral_norm"]:
            return super().__reduce_ex__(protocol)
        return _rebuilt_discriminator, (self.options, self.state_dict(), self.training)


def _rebuilt_discriminator(options: dict, state: dict[str, Tensor], training: bool) -> nn.Module:
    discriminator = VideoDiscriminator(**options)
    discriminator.load_state_dict(state, assign=True)  # keeps the weights' device and dtype
    return discriminator.train(training)
