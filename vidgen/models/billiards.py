"""Billiards predictors: Fragkiadaki, Agrawal, Levine & Malik (2016), "Learning Visual
Predictive Models of Physics for Playing Billiards", arXiv:1511.07404 (ICLR 2016).

The object-centric (OC) model sees each ball through glimpses centred on it: the ``history``
most recent frames, each cropped around the ball's position in that frame (the authors'
released data layer; ``glimpse_anchor="per_frame"``: the walls and other balls move past the
ball) or all around its current position (``"current"``: the ball's motion shows as an offset),
padded white beyond the image and resized. An AlexNet-style CNN encodes the stacked glimpses,
the applied force is concatenated, and a 2-layer LSTM outputs the ball's displacements for the
next ``horizon`` frames. Every ball goes through the same network, so the learned physics is
translation-invariant and works for any number of balls. The frame-centric (FC) baseline
encodes the whole table instead and predicts every ball slot at once. All three models here
(and the constant-velocity baseline) answer one call: ``(frames, positions, forces) ->
displacements [B, T', K, horizon, 2]``, one prediction per step of ``forces`` (the last T'
frames). Step t sees the force applied at frame t and predicts u_{t+1} .. u_{t+horizon},
u_{t+k} = p_{t+k} - p_{t+k-1}: the impulse at frame t is what moves the ball from t to t + 1.

Positions and displacements are in world units (the simulator's); ``arena`` world units span
the frame. Absent balls (NaN positions) get predictions that callers mask out.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LSTMState = tuple[Tensor, Tensor]

# torchvision.models.AlexNet().features, layer by layer: (out channels, kernel, stride, padding),
# "M" a 3x3 stride-2 max pool. Same indices, so its state-dict keys are torchvision's.
ALEXNET_FEATURES = [(64, 11, 4, 2), "M", (192, 5, 1, 2), "M", (384, 3, 1, 1), (256, 3, 1, 1)]
ALEXNET_FEATURES += [(256, 3, 1, 1), "M"]


def alexnet_features(in_channels: int, width: float = 1.0) -> nn.Sequential:
    """AlexNet's conv trunk for ``in_channels`` inputs with channels scaled by ``width``."""
    layers: list[nn.Module] = []
    for spec in ALEXNET_FEATURES:
        if spec == "M":
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
            continue
        out_channels, kernel, stride, padding = spec
        out_channels = max(8, round(out_channels * width))
        layers += [nn.Conv2d(in_channels, out_channels, kernel, stride, padding), nn.ReLU(True)]
        in_channels = out_channels
    return nn.Sequential(*layers)


def load_alexnet_weights(features: nn.Sequential, path: str, history: int) -> None:
    """Start from torchvision AlexNet weights in a local file (``alexnet-owt-*.pth``): the first
    conv's RGB filters are repeated over the ``history`` stacked frames and divided by it."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    state["0.weight"] = state["0.weight"].repeat(1, history, 1, 1) / history
    features.load_state_dict(state)


GLIMPSE_ANCHORS = ("per_frame", "current")


def crop_grid(
    centres: Tensor, extent: tuple[float, float], size: int, frame_size: tuple[int, int]
) -> Tensor:
    """centres [B, S, K, 2] (x, y) in pixels -> a ``grid_sample`` grid [B, S, G, K * G, 2]
    that samples the K crops of ``extent`` pixels side by side along x, G = ``size``."""
    b, s, k = centres.shape[:3]
    h, w = frame_size
    ramp = (torch.arange(size, device=centres.device, dtype=centres.dtype) + 0.5) / size - 0.5
    centres = centres.nan_to_num(0.0)
    grid_x = (centres[..., 0, None] + ramp * extent[0]) * (2.0 / w) - 1.0  # [B, S, K, G]
    grid_y = (centres[..., 1, None] + ramp * extent[1]) * (2.0 / h) - 1.0
    grid = torch.stack(torch.broadcast_tensors(grid_x[..., None, :], grid_y[..., None]), -1)
    return grid.permute(0, 1, 3, 2, 4, 5).reshape(b, s, size, k * size, 2)


def glimpses(
    frames: Tensor,
    centres: Tensor,
    extent: tuple[float, float],
    size: int,
    history: int,
    keep: Tensor | None = None,
    steps: int | None = None,
    anchor: str = "current",
) -> Tensor:
    """Per-object sequences of crops of the ``history`` frames up to each step, *inverted*
    (1 - pixel).

    frames [B, T, C, H, W] in [0, 1]; centres [B, Tc, K, 2] (x, y) in pixels (pixel i spans
    [i, i + 1)) of the last Tc frames; extent (x, y) in pixels; keep [B, K] bool (default all)
    -> [N, S, history * C, G, G] for the last S = ``steps`` (default Tc) steps, one sequence
    per kept object in (b, k) order, G = ``size``, channels-last in memory. ``anchor``
    ``current`` crops every frame of a step's stack around that step's centre (the motion
    shows as the object's offset); ``per_frame`` crops each frame around its own centre, as
    the paper's released data layer does (centres before the first given repeat it). Frames
    before the first are the first repeated (right for balls at rest before the force). The
    paper pads crops with white, which inverted is zero padding.
    """
    b, t, c, h, w = frames.shape
    k = centres.shape[2]
    steps = centres.shape[1] if steps is None else steps
    span = steps + history - 1
    source = torch.arange(t - span, t, device=frames.device).clamp(0)
    sequence = 1.0 - frames[:, source].flatten(0, 1)  # [B*span, C, H, W]
    if anchor == "per_frame":
        # Each frame is cropped once; a step's stack is its ``history`` crops up to it.
        own = centres[:, (source - (t - centres.shape[1])).clamp(0)]  # [B, span, K, 2]
        grid = crop_grid(own.to(frames.dtype), extent, size, (h, w)).flatten(0, 1)
        crops = F.grid_sample(sequence, grid, align_corners=False)  # [B*span, C, G, K*G]
        stacks = crops.view(b, span, c, size, k, size).unfold(1, history, 1)
        # [B, S, C, G, K, G, history] -> (b, k, t, y, x, history, channel) memory.
        out = stacks.permute(0, 4, 1, 3, 5, 6, 2).reshape(b * k, steps, size, size, -1)
    else:
        # One contiguous copy of the frames the stacks need (plus history - 1 spare at the
        # end); each stack of ``history`` frames is then a strided view, never copied alone.
        sequence = torch.cat([sequence, sequence[: history - 1]]).contiguous()
        stacks = sequence.as_strided((b * span, history * c, h, w), (c * h * w, h * w, w, 1))
        grid = crop_grid(centres[:, -steps:].to(frames.dtype), extent, size, (h, w))
        # All K crops of a stack in one grid_sample call. The last history - 1 stacks of
        # each sequence straddle the next one: sampled anywhere, dropped.
        grid = F.pad(grid, (0, 0, 0, 0, 0, 0, 0, history - 1)).flatten(0, 1)
        crops = F.grid_sample(stacks, grid, align_corners=False)  # [B*span, history*C, G, K*G]
        crops = crops.view(b, span, history * c, size, k, size)[:, :steps]
        # One transposing copy into (b, k, t, y, x, channel) memory: per object, channels-last.
        out = crops.permute(0, 4, 1, 3, 5, 2).reshape(b * k, steps, size, size, history * c)
    if keep is not None:
        out = out[keep.flatten()]
    return out.permute(0, 1, 4, 2, 3)


class RecurrentPredictor(nn.Module):
    """Shared trunk: AlexNet-style encoder of stacked crops -> concat forces -> 2-layer LSTM
    -> ``outputs`` x ``horizon`` displacements. Subclasses choose the crops; these keywords
    (and their defaults, the paper's) are every subclass's."""

    def __init__(
        self,
        forces_in: int,
        outputs: int,
        glimpse_size: int = 128,
        history: int = 4,
        horizon: int = 20,
        width: float = 1.0,
        hidden: int = 512,
        arena: float = 600.0,
        force_scale: float = 1e4,
        displacement_scale: float = 10.0,
        pretrained: str | None = None,
    ) -> None:
        super().__init__()
        self.glimpse_size, self.history, self.horizon = glimpse_size, history, horizon
        self.arena, self.force_scale = arena, force_scale
        self.displacement_scale = displacement_scale
        self.features = alexnet_features(3 * history, width)
        if pretrained:
            load_alexnet_weights(self.features, pretrained, history)
        with torch.no_grad():
            dim = self.features(torch.zeros(1, 3 * history, glimpse_size, glimpse_size)).numel()
        self.project = nn.Sequential(nn.Flatten(), nn.Linear(dim, hidden), nn.ReLU(True))
        self.lstm = nn.LSTM(hidden + forces_in, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, outputs * horizon * 2)

    def pixels_per_unit(self, frames: Tensor) -> tuple[float, float]:
        return frames.shape[-1] / self.arena, frames.shape[-2] / self.arena

    def recur(
        self, crops: Tensor, forces: Tensor, state: LSTMState | None
    ) -> tuple[Tensor, LSTMState]:
        """crops [N, T', history*C, G, G], forces [N, T', F] -> [N, T', outputs, horizon, 2]."""
        n, t = crops.shape[:2]
        x = self.project(self.features(crops.flatten(0, 1))).view(n, t, -1)
        x = torch.cat([x, forces / self.force_scale], dim=-1)
        # The LSTM runs in fp32 under bf16 autocast: its state accumulates over the window,
        # and oneDNN has no bf16 LSTM on CPUs without native bf16.
        with torch.autocast(x.device.type, enabled=False):
            y, state = self.lstm(x.float(), state)
        out = self.head(y).view(n, t, -1, self.horizon, 2) * self.displacement_scale
        return out, state


class ObjectCentricPredictor(RecurrentPredictor):
    """The paper's model: one glimpse stream per ball, shared weights. ``trunk``: the
    keywords of RecurrentPredictor after its first two."""

    def __init__(
        self,
        glimpse_extent: float = 512.0,
        glimpse_anchor: str = "current",
        **trunk: Any,
    ) -> None:
        if glimpse_anchor not in GLIMPSE_ANCHORS:
            raise ValueError(f"glimpse_anchor must be per_frame or current, got {glimpse_anchor!r}")
        super().__init__(2, 1, **trunk)
        self.glimpse_extent = glimpse_extent
        # The default is the anchor of checkpoints saved before the option existed; the
        # paper's experiments set per_frame.
        self.glimpse_anchor = glimpse_anchor

    def forward(
        self, frames: Tensor, positions: Tensor, forces: Tensor, state: LSTMState | None = None
    ) -> tuple[Tensor, LSTMState]:
        """frames [B, T, C, H, W]; positions [B, Tp, K, 2] of the last Tp frames and forces
        [B, T', K, 2] of the last T' <= Tp -> displacements [B, T', K, horizon, 2] and the LSTM
        state (per ball, [2, B*K, hidden]). Per-frame glimpses of the history frames before
        the last T' use their positions when given (the first given otherwise)."""
        b, t_out, k = forces.shape[:3]
        sx, sy = self.pixels_per_unit(frames)
        centres = positions * positions.new_tensor([sx, sy])
        extent = (self.glimpse_extent * sx, self.glimpse_extent * sy)
        # Only balls on the table go through the network; absent ones predict zeros.
        present = positions[:, -t_out:].isfinite().all(-1).all(1)  # [B, K]
        crops = glimpses(
            frames,
            centres,
            extent,
            self.glimpse_size,
            self.history,
            present,
            t_out,
            self.glimpse_anchor,
        )
        present = present.flatten()
        if state is not None:
            state = (state[0][:, present], state[1][:, present])
        forces = forces.transpose(1, 2).flatten(0, 1)[present]
        out, (h, c) = self.recur(crops, forces, state)
        full = out.new_zeros(b * k, t_out, 1, self.horizon, 2)
        full[present] = out
        state = (
            h.new_zeros(h.shape[0], b * k, h.shape[2]),
            c.new_zeros(c.shape[0], b * k, c.shape[2]),
        )
        state[0][:, present], state[1][:, present] = h, c
        return full.view(b, k, t_out, self.horizon, 2).transpose(1, 2), state


class FrameCentricPredictor(RecurrentPredictor):
    """The paper's FC baseline: the whole frame and every ball's force in, every ball out.
    ``trunk``: the keywords of RecurrentPredictor after its first two."""

    def __init__(self, max_balls: int = 3, **trunk: Any) -> None:
        super().__init__(2 * max_balls, max_balls, **trunk)
        self.max_balls = max_balls

    def forward(
        self, frames: Tensor, positions: Tensor, forces: Tensor, state: LSTMState | None = None
    ) -> tuple[Tensor, LSTMState]:
        b, t_out, k = forces.shape[:3]
        if k > self.max_balls:
            raise ValueError(f"this model predicts at most {self.max_balls} balls, got {k}")
        h, w = frames.shape[-2:]
        centre = frames.new_tensor([w / 2, h / 2]).expand(b, t_out, 1, 2)
        crops = glimpses(frames, centre, (w, h), self.glimpse_size, self.history)
        forces = F.pad(forces, (0, 0, 0, self.max_balls - k)).flatten(2)  # [B, T', 2*max]
        out, state = self.recur(crops, forces, state)
        return out[:, :, :k], state


class ConstantVelocity(nn.Module):
    """Baseline: every ball keeps its last displacement (zero before it has two positions)."""

    def __init__(self, horizon: int = 20, arena: float = 600.0) -> None:
        super().__init__()
        self.horizon, self.arena, self.history = horizon, arena, 2

    def forward(
        self, frames: Tensor, positions: Tensor, forces: Tensor | None, state: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``state`` is the position before the first of ``positions`` (None: unknown); one
        prediction per step of ``forces`` (every position's step when None)."""
        previous = positions[:, :1] if state is None else state[:, None]
        last = torch.cat([previous, positions[:, :-1]], dim=1)
        steps = positions.shape[1] if forces is None else forces.shape[1]
        velocity = (positions - last)[:, -steps:]  # [B, T', K, 2]
        return velocity[:, :, :, None].expand(-1, -1, -1, self.horizon, -1), positions[:, -1]
