"""A convolutional LSTM cell shared by PredNet and the Finn et al. (2016) CDNA model.

Shapes use the ``B C H W`` convention; the cell works on one time step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Recurrent state and activations are kept channels-last (NHWC in memory) by default: oneDNN
# and cuDNN have their fast convolution kernels for it, and on CPU the small configs run many
# times faster than in NCHW. Wide layers on CPU can be the exception (PredNet's option).
CHANNELS_LAST = torch.channels_last


def channels_last_frames(frames: Tensor) -> Tensor:
    """[B, T, C, H, W] whose every frames[:, t] is channels-last in memory (a no-op if so)."""
    if frames.stride(2) == 1:
        return frames
    return frames.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)


def zero_state(
    shape: tuple[int, int, int, int],
    device: torch.device,
    dtype: torch.dtype,
    memory_format: torch.memory_format = CHANNELS_LAST,
) -> Tensor:
    return torch.empty(shape, device=device, dtype=dtype, memory_format=memory_format).zero_()


def hard_sigmoid(x: Tensor) -> Tensor:
    """Keras-2 hard sigmoid, ``clamp(0.2 * x + 0.5, 0, 1)``.

    Not ``F.hardsigmoid``, whose slope is 1/6 (the Keras 3 definition). The in-place chain
    allocates one tensor; ``hardtanh_`` is autograd-safe because its backward reads the result.
    """
    return F.hardtanh_(x.mul(0.2).add_(0.5), 0.0, 1.0)


class _TanhViaSigmoid(torch.autograd.Function):
    """tanh(x) = 2 sigmoid(2x) - 1, within 2e-7 in float32; the backward is tanh's."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        y = torch.sigmoid(x * 2).mul_(2).sub_(1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


def tanh(x: Tensor) -> Tensor:
    """``torch.tanh``, through the sigmoid kernel for float CPU tensors: PyTorch's CPU tanh is
    about 4x slower than its sigmoid (10x on a channel slice of an NHWC tensor, which is
    what the gates are), and it took ~6% of a PredNet training step."""
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        return _TanhViaSigmoid.apply(x)
    return torch.tanh(x)


_GATE_ACTIVATIONS = {"hard_sigmoid": hard_sigmoid, "sigmoid": torch.sigmoid}


class ConvLSTMCell(nn.Module):
    """ConvLSTM without peepholes: one conv yields the i, f, o and candidate pre-activations.

    ``c = f * c_prev + i * tanh(g)`` and ``h = o * tanh(c)``, where i, f, o use
    ``gate_activation``. With ``recurrent_input=True`` the conv sees ``[x, h_prev]``;
    PredNet passes ``False`` because its input already holds R(t-1) in its own channel order.
    ``norm=True`` layer-normalizes the stacked gate pre-activations and the new cell state
    (the normalized cell state is what is carried, as in TF's ``LayerNormBasicLSTMCell``).
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int = 3,
        gate_activation: str = "hard_sigmoid",
        forget_bias: float = 0.0,
        norm: bool = False,
        recurrent_input: bool = True,
    ) -> None:
        super().__init__()
        if gate_activation not in _GATE_ACTIVATIONS:
            raise ValueError(
                f"gate_activation must be one of {sorted(_GATE_ACTIVATIONS)}, "
                f"got {gate_activation!r}"
            )
        self.hidden_channels = hidden_channels
        self.forget_bias = forget_bias
        self.recurrent_input = recurrent_input
        self.gate_fn = _GATE_ACTIVATIONS[gate_activation]
        conv_in = in_channels + hidden_channels if recurrent_input else in_channels
        self.conv = nn.Conv2d(conv_in, 4 * hidden_channels, kernel_size, padding="same")
        self.gate_norm = nn.GroupNorm(1, 4 * hidden_channels) if norm else nn.Identity()
        self.cell_norm = nn.GroupNorm(1, hidden_channels) if norm else nn.Identity()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras init: Glorot-uniform per gate (each gate is its own Keras conv), zero biases."""
        with torch.no_grad():
            for gate_weight in self.conv.weight.chunk(4, dim=0):
                nn.init.xavier_uniform_(gate_weight)
            nn.init.zeros_(self.conv.bias)

    def init_state(
        self,
        batch: int,
        height: int,
        width: int,
        device: torch.device,
        dtype: torch.dtype,
        memory_format: torch.memory_format = CHANNELS_LAST,
    ) -> tuple[Tensor, Tensor]:
        """Zero ``(h, c)``, each ``[B, hidden, H, W]`` (channels-last in memory by default)."""
        shape = (batch, self.hidden_channels, height, width)
        return (
            zero_state(shape, device, dtype, memory_format),
            zero_state(shape, device, dtype, memory_format),
        )

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One step. ``x``: ``[B, C_in, H, W]``; ``state``: ``(h, c)`` or None for zeros."""
        if state is None:
            state = self.init_state(x.shape[0], x.shape[2], x.shape[3], x.device, x.dtype)
        h_prev, c_prev = state
        if self.recurrent_input:
            x = torch.cat((x, h_prev), dim=1)
        return self.update(self.conv(x), c_prev)

    def update(self, gates: Tensor, c_prev: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """The LSTM update from the conv's output ``gates`` ``[B, 4*hidden, H, W]`` (for a
        caller that computes the conv its own way) and the previous cell state."""
        gates = self.gate_norm(gates)
        i, f, o, g = gates.chunk(4, dim=1)
        if self.forget_bias:
            f = f + self.forget_bias
        act = self.gate_fn
        c = (act(f) * c_prev).addcmul_(act(i), tanh(g))
        c = self.cell_norm(c)
        h = act(o) * tanh(c)
        return h, (h, c)
