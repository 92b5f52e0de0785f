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


def fold_for_upsampled(weight: Tensor) -> Tensor:
    """The 3x3 ``weight`` [O, C, 3, 3] as the 4x4 transposed-conv kernel [C, O, 4, 4] that
    ``conv3x3_of_upsampled`` uses.

    Output row 2i + a of conv(Up(x)) sees rows i-1, i of ``x`` for a = 0 (kernel rows 0 | 1+2)
    and rows i, i+1 for a = 1 (rows 0+1 | 2). A stride-2 transposed conv with padding 1 sends
    row i of ``x`` to output row 2i + k - 1 through tap k, so its taps 3, 1 (a = 0) and 2, 0
    (a = 1) take those sums; likewise columns.
    """
    fold = weight.new_tensor([[0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]])  # [tap, kernel row]
    return torch.einsum("kr,ocrs,ls->cokl", fold, weight, fold)


def conv3x3_of_upsampled(x: Tensor, folded: Tensor) -> Tensor:
    """``conv2d(upsample_nearest_x2(x), weight, padding=1)`` for a 3x3 ``weight`` given as
    ``fold_for_upsampled(weight)``: one transposed convolution of ``x`` itself, at 16/36 of
    the multiply-adds and with no upsampled copy of ``x`` (in either pass).
    ``x``: ``[B, C, h, w]``; returns ``[B, O, 2h, 2w]`` in ``x``'s memory layout.
    """
    return F.conv_transpose2d(x, folded, stride=2, padding=1)


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
        # Input channels of layer i's gate conv besides Up(R_{i+1}): R_i and E_i.
        self.own_inputs = [
            r + 2 * s for r, s in zip(self.r_stack_sizes, self.stack_sizes, strict=True)
        ]
        self.pixel_max = pixel_max
        self.fold_top_down = r_filt_size == 3  # conv3x3_of_upsampled; other sizes upsample
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

    def _split_gate_weights(self) -> tuple[list[Tensor], list[Tensor]]:
        """Each layer's gate-conv weight split once per forward pass, so that the backward
        pass assembles each weight's gradient once rather than at every step: the part that
        sees R_i and E_i, and below the top the part that sees Up(R_{i+1}), folded for
        ``conv3x3_of_upsampled`` when the kernel is 3x3 (then [C, O, 4, 4])."""
        own, top_down = [], []
        for i, cell in enumerate(self.cells):
            own.append(cell.conv.weight[:, : self.own_inputs[i]])
            if i < self.num_layers - 1:
                weight = cell.conv.weight[:, self.own_inputs[i] :]
                top_down.append(fold_for_upsampled(weight) if self.fold_top_down else weight)
        return own, top_down

    def _top_down(self, r_above: Tensor, weight: Tensor) -> Tensor:
        """The conv of Up(R_{i+1}) within layer i's gates, ``weight`` from _split_gate_weights."""
        if self.fold_top_down:
            return conv3x3_of_upsampled(r_above, weight)
        return F.conv2d(F.interpolate(r_above, scale_factor=2), weight, padding="same")

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

        own_weights, top_down_weights = self._split_gate_weights()
        steps = num_frames + future_steps  # T' below
        predictions: list[Tensor] = []  # each [B, C, H, W]
        errors: list[Tensor] = []  # each [B], ordered (t, layer)
        for t in range(steps):
            # Keras extrapolation: the previous prediction stands in for the current frame.
            a = frames[:, t] if t < observed else predictions[-1]  # [B, C, H, W]

            # Top-down: layer i sees the already-updated R_{i+1}(t) of this step. Its conv
            # over concat[R_i, E_i, Up(R_{i+1})] is split: R_i and E_i by a plain conv (at
            # t = 0 both are zero: the bias alone), R_{i+1} folded (conv3x3_of_upsampled).
            for i in reversed(range(self.num_layers)):
                cell = self.cells[i]
                bias = cell.conv.bias
                if t == 0:
                    gates = bias.view(1, -1, 1, 1).expand(batch, -1, height >> i, width >> i)
                    gates = gates.contiguous(memory_format=self.memory_format)  # as the states
                else:
                    x = torch.cat((r_states[i], e_states[i]), dim=1)  # [B, R_i + 2*C_i, H_i, W_i]
                    gates = F.conv2d(x, own_weights[i], bias, padding="same")
                if i < self.num_layers - 1:
                    # In place: gates is fresh (the conv's output, or the bias copied out at t = 0),
                    # and the conv's backward does not read its output.
                    gates.add_(self._top_down(r_states[i + 1], top_down_weights[i]))
                r_states[i], (_, c_states[i]) = cell.update(gates, c_states[i])

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
