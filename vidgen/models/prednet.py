"""PredNet: Lotter, Kreiman & Cox (2016), "Deep Predictive Coding Networks for Video
Prediction and Unsupervised Learning", arXiv:1605.08104 (ICLR 2017).

A faithful port of the Keras reference (coxlab/prednet): Keras-2 hard-sigmoid gates,
Glorot-uniform weights with zero biases, zero initial states, top-down R pass before the
bottom-up error pass, and the Keras extrapolation mode. Shapes use ``B T C H W``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.models.convlstm import ConvLSTMCell, channels_last_frames, zero_state


def _glorot_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    """'same' conv with the Keras init: Glorot-uniform weights, zero bias.

    PyTorch's default init (with sigmoid gates) collapsed to an all-black prediction on
    dark scenes in our runs: the ReLU on Ahat dies and never recovers.
    """
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding="same")
    nn.init.xavier_uniform_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class PredNet(nn.Module):
    """Stack of predictive-coding layers; layer 0's Ahat is the next-frame prediction.

    ``stack_sizes[l]`` is the channel count of A_l / Ahat_l (``stack_sizes[0]`` is the image
    channel count), ``r_stack_sizes[l]`` that of the ConvLSTM state R_l. E_l has
    ``2 * stack_sizes[l]`` channels (the positive and negative error halves).
    ``channels_last`` keeps activations NHWC in memory; which layout is faster depends on
    the widths and the device (``benchmarks/prednet.py`` measures both; figures in
    docs/benchmarks.md).
    """

    def __init__(
        self,
        stack_sizes: Sequence[int] = (3, 48, 96, 192),
        r_stack_sizes: Sequence[int] | None = None,
        a_filt_size: int = 3,
        ahat_filt_size: int = 3,
        r_filt_size: int = 3,
        pixel_max: float = 1.0,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        self.channels_last = channels_last
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.stack_sizes = tuple(stack_sizes)
        self.r_stack_sizes = tuple(stack_sizes if r_stack_sizes is None else r_stack_sizes)
        if len(self.r_stack_sizes) != len(self.stack_sizes):
            raise ValueError("r_stack_sizes must have one entry per layer, like stack_sizes")
        self.num_layers = len(self.stack_sizes)
        self.pixel_max = pixel_max
        s, r, n = self.stack_sizes, self.r_stack_sizes, self.num_layers

        # R_l's input is concat[R_l(t-1), E_l(t-1), Up(R_{l+1}(t))], the Keras channel order.
        self.cells = nn.ModuleList(
            ConvLSTMCell(
                r[i] + 2 * s[i] + (r[i + 1] if i < n - 1 else 0),
                r[i],
                r_filt_size,
                gate_activation="hard_sigmoid",
                recurrent_input=False,
            )
            for i in range(n)
        )
        self.ahat_convs = nn.ModuleList(_glorot_conv(r[i], s[i], ahat_filt_size) for i in range(n))
        self.a_convs = nn.ModuleList(
            _glorot_conv(2 * s[i], s[i + 1], a_filt_size) for i in range(n - 1)
        )

    def forward(
        self, frames: Tensor, extrap_start_time: int | None = None, future_steps: int = 0
    ) -> tuple[Tensor, Tensor]:
        """Run the network over ``frames`` ``[B, T, C, H, W]`` with values in [0, 1].

        Returns ``predictions`` ``[B, T + future_steps, C, H, W]``, where step t predicts
        frame t from frames < t (step 0 comes from the zero state), and ``errors``
        ``[B, T + future_steps, L]``, the mean of E_l over its C, H, W at each step.
        From step ``extrap_start_time`` on (and always for steps >= T) the input frame is
        the previous step's prediction, as in the Keras ``extrap_start_time`` mode.
        """
        frames = channels_last_frames(frames) if self.channels_last else frames.contiguous()
        batch, num_frames, _, height, width = frames.shape
        factor = 2 ** (self.num_layers - 1)
        if height % factor or width % factor:
            raise ValueError(
                f"PredNet with {self.num_layers} layers needs H and W divisible by {factor}, "
                f"got {height}x{width}"
            )
        if extrap_start_time is not None and extrap_start_time < 1:
            raise ValueError(f"extrap_start_time must be >= 1, got {extrap_start_time}")
        if future_steps < 0:
            raise ValueError(f"future_steps must be >= 0, got {future_steps}")
        observed = num_frames if extrap_start_time is None else min(extrap_start_time, num_frames)
        if observed < 1:
            raise ValueError("PredNet needs at least one input frame")

        # Zero R, C (ConvLSTM state) and E for every sequence; nothing carries over.
        r_states: list[Tensor] = []
        c_states: list[Tensor] = []
        e_states: list[Tensor] = []
        for i, cell in enumerate(self.cells):
            h, w = height >> i, width >> i
            r0, c0 = cell.init_state(batch, h, w, frames.device, frames.dtype, self.memory_format)
            r_states.append(r0)
            c_states.append(c0)
            e_shape = (batch, 2 * self.stack_sizes[i], h, w)
            e_states.append(zero_state(e_shape, frames.device, frames.dtype, self.memory_format))

        steps = num_frames + future_steps  # T' below
        predictions: list[Tensor] = []  # each [B, C, H, W]
        errors: list[Tensor] = []  # each [B], ordered (t, layer)
        for t in range(steps):
            # Keras extrapolation: the previous prediction stands in for the current frame.
            a = frames[:, t] if t < observed else predictions[-1]  # [B, C, H, W]

            # Top-down: layer i sees the already-updated R_{i+1}(t) of this step.
            r_up: Tensor | None = None
            for i in reversed(range(self.num_layers)):
                parts = [r_states[i], e_states[i]]
                if r_up is not None:
                    parts.append(r_up)
                x = torch.cat(parts, dim=1)  # [B, R_i + 2*C_i (+ R_{i+1}), H_i, W_i]
                r_states[i], (_, c_states[i]) = self.cells[i](x, (r_states[i], c_states[i]))
                if i > 0:
                    r_up = F.interpolate(r_states[i], scale_factor=2, mode="nearest")

            # Bottom-up: predictions, errors, and the next layer's target A_{i+1}.
            for i in range(self.num_layers):
                ahat = self.ahat_convs[i](r_states[i])
                if i == 0:
                    ahat = ahat.clamp(0.0, self.pixel_max)  # ReLU + SatLU: the frame prediction
                    predictions.append(ahat)
                else:
                    ahat = F.relu(ahat, inplace=True)
                e = torch.cat((ahat - a, a - ahat), dim=1).relu_()  # [B, 2*C_i, H_i, W_i]
                e_states[i] = e
                errors.append(e.mean(dim=(1, 2, 3)))
                if i < self.num_layers - 1:
                    # pool(relu(x)) == relu(pool(x)); pooling first touches 4x fewer elements.
                    a = F.max_pool2d(self.a_convs[i](e), 2).relu_()

        return (
            torch.stack(predictions, dim=1),  # [B, T', C, H, W]
            torch.stack(errors, dim=1).reshape(batch, steps, self.num_layers),  # [B, T', L]
        )
