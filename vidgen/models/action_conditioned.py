"""Action-conditioned video prediction: Finn, Goodfellow & Levine (2016), "Unsupervised
Learning for Physical Interaction through Video Prediction", NIPS, arXiv:1605.07157.

A port of the released TensorFlow code (tensorflow/models research/video_prediction,
``prediction_model.py`` @8699e3b): an encoder-decoder of 7 ConvLSTMs (5x5 gates, forget
bias 1) with layer norm on every LSTM output, skip connections, and the action and state
tiled at the 8x8 bottleneck. The network does not draw the next frame; it moves pixels of
the previous one, by one of three heads:

* CDNA: 10 normalized 5x5 kernels per sample, convolved depthwise with the previous frame;
* DNA: a normalized 5x5 kernel per pixel;
* STP: 10 affine spatial transformers,

then composites the transformed images, a background and (CDNA, STP) a "from scratch"
image with a softmax mask. Released-code choices kept: layer norm = ``GroupNorm(1, C)``,
no ReLU on enc6, the scratch image and the mask logits (the 8699e3b activations), kernels
normalized by ``relu(k - 1e-12) + 1e-12`` over their own sum (not a softmax), zero padding.

The 10th-kernel question: the released CDNA makes 10 kernels but only 11 masks (background
+ 10), so ``zip`` silently drops the last kernel (alexlee-gk/video_prediction#48). We give
every transformed image a mask: ``1 + num_kernels + 1`` masks for CDNA and STP, as the
paper's "10 kernels" intends. DNA has 2 masks (background, DNA), as released.
Shapes use ``B T C H W``; activations are channels-last in memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.models.convlstm import ConvLSTMCell, channels_last_frames

RELU_SHIFT = 1e-12
HEADS = ("cdna", "dna", "stp")


def normalize_kernels(kernels: Tensor, dim: Sequence[int]) -> Tensor:
    """Non-negative kernels that sum to 1 over ``dim``: relu(k - eps) + eps, then / sum."""
    kernels = F.relu(kernels - RELU_SHIFT) + RELU_SHIFT
    return kernels / kernels.sum(dim=tuple(dim), keepdim=True)


def cdna_transform(image: Tensor, kernels: Tensor) -> Tensor:
    """Apply each sample's own K kernels to every colour channel of its image.

    image [B, C, H, W], kernels [B, K, k, k] -> [B, K, C, H, W]. One grouped convolution:
    the batch goes into the channel axis (1, B*C, H, W) and each of the B*C groups gets that
    sample's K kernels, so channels never mix with kernels (the bug of tensorflow/models#1822).
    conv2d is a cross-correlation, like TF's depthwise_conv2d: no kernel flip.
    """
    b, c, h, w = image.shape
    k, size = kernels.shape[1], kernels.shape[-1]
    weight = kernels.unsqueeze(1).expand(b, c, k, size, size).reshape(b * c * k, 1, size, size)
    out = F.conv2d(image.reshape(1, b * c, h, w), weight, padding=size // 2, groups=b * c)
    return out.view(b, c, k, h, w).transpose(1, 2)  # B K C H W


def dna_transform(image: Tensor, kernels: Tensor) -> Tensor:
    """Per-pixel kernels: image [B, C, H, W], kernels [B, k*k, H, W] (row-major offsets, as
    the released code's 25 shifted copies) -> [B, C, H, W]."""
    b, c, h, w = image.shape
    size = int(round(kernels.shape[1] ** 0.5))
    patches = F.unfold(image, size, padding=size // 2).view(b, c, size * size, h, w)
    return (patches * kernels.unsqueeze(1)).sum(2)


def stp_transform(image: Tensor, theta: Tensor) -> Tensor:
    """Affine spatial transformers: image [B, C, H, W], theta [B, K, 2, 3] -> [B, K, C, H, W].

    ``align_corners=False`` maps the identity exactly onto pixel centres, and border padding
    clamps at the edges as TF's transformer does.
    """
    b, k = theta.shape[:2]
    images = image.unsqueeze(1).expand(b, k, *image.shape[1:]).flatten(0, 1)
    grid = F.affine_grid(theta.flatten(0, 1), list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, padding_mode="border", align_corners=False)
    return out.view(b, k, *image.shape[1:])


def _deconv(in_channels: int, out_channels: int, bias: bool = True) -> nn.ConvTranspose2d:
    """3x3, stride 2: exactly doubles H and W, like TF's 'SAME' conv2d_transpose."""
    return nn.ConvTranspose2d(in_channels, out_channels, 3, 2, 1, output_padding=1, bias=bias)


def scheduled_mix(true: Tensor, predicted: Tensor, num_true: int) -> Tensor:
    """A fresh random subset of ``num_true`` batch items gets its true frame, the rest their
    own prediction ([B, C, H, W] each). No detach: gradients flow through the fed-back frames,
    as in the released code (tf.random_shuffle + dynamic_stitch)."""
    if num_true >= len(true):
        return true
    if num_true <= 0:
        return predicted
    chosen = torch.zeros(len(true), dtype=torch.bool, device=true.device)
    chosen[torch.randperm(len(true), device=true.device)[:num_true]] = True
    return torch.where(chosen[:, None, None, None], true, predicted)


class ActionConditionedConvLSTM(nn.Module):
    """The Finn et al. network with a CDNA, DNA or STP head; one call runs a whole sequence.

    ``channels`` are the 7 ConvLSTM widths (paper: 32, 32, 64, 64, 128, 64, 32);
    ``image_size`` (H, W) fixes the flattened bottleneck that feeds the CDNA and STP heads.
    ``background`` is ``"previous"`` (released code) or ``"first"`` (frame 0, as SNA/SAVP).
    ``state_dim=0`` conditions on actions alone (the released ``use_state=0``).
    """

    def __init__(
        self,
        action_dim: int,
        state_dim: int,
        head: str = "cdna",
        channels: Sequence[int] = (32, 32, 64, 64, 128, 64, 32),
        image_size: Sequence[int] = (64, 64),
        image_channels: int = 3,
        num_kernels: int = 10,
        kernel_size: int = 5,
        background: str = "previous",
    ) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if background not in ("previous", "first"):
            raise ValueError(f"background must be 'previous' or 'first', got {background!r}")
        if len(channels) != 7:
            raise ValueError(f"channels needs the 7 ConvLSTM widths, got {list(channels)}")
        if len(image_size) != 2 or image_size[0] % 8 or image_size[1] % 8:
            raise ValueError(f"image_size must be (H, W), both divisible by 8, got {image_size}")
        self.head, self.background = head, background
        self.action_dim, self.state_dim = action_dim, state_dim
        self.image_size = tuple(image_size)
        self.num_kernels, self.kernel_size = num_kernels, kernel_size
        c1, c2, c3, c4, c5, c6, c7 = channels
        cond = action_dim + state_dim

        def lstm(cin: int, cout: int) -> ConvLSTMCell:
            # Layer norm goes on the output h (self.norms), not inside the cell: the released
            # cell is a plain ConvLSTM and its recurrent h is the un-normalized one.
            return ConvLSTMCell(cin, cout, 5, gate_activation="sigmoid", forget_bias=1.0)

        self.enc0 = nn.Conv2d(image_channels, c1, 5, 2, padding=2, bias=False)
        self.enc0_norm = nn.GroupNorm(1, c1, eps=1e-12)
        self.enc1 = nn.Conv2d(c2, c2, 3, 2, padding=1)
        self.enc2 = nn.Conv2d(c4, c4, 3, 2, padding=1)
        self.enc3 = nn.Conv2d(c4 + cond, c4, 1)
        self.enc4 = _deconv(c5, c5)
        self.enc5 = _deconv(c6 + c2, c6 + c2)
        self.enc6 = _deconv(c7 + c1, c7 + c1, bias=False)
        self.enc6_norm = nn.GroupNorm(1, c7 + c1, eps=1e-12)
        self.lstms = nn.ModuleList(
            [lstm(c1, c1), lstm(c1, c2), lstm(c2, c3), lstm(c3, c4), lstm(c4, c5),
             lstm(c5, c6), lstm(c6 + c2, c7)]
        )  # fmt: skip
        self.norms = nn.ModuleList(nn.GroupNorm(1, c, eps=1e-12) for c in channels)

        # Images composited: background + transformed (+ scratch for CDNA and STP).
        kernel_outputs = kernel_size * kernel_size if head == "dna" else image_channels
        self.enc7 = nn.ConvTranspose2d(c7 + c1, kernel_outputs, 1)
        num_masks = 2 if head == "dna" else num_kernels + 2
        self.masks = nn.ConvTranspose2d(c7 + c1, num_masks, 1)
        bottleneck = c5 * (self.image_size[0] // 8) * (self.image_size[1] // 8)
        if head == "cdna":
            self.cdna_kernels = nn.Linear(bottleneck, num_kernels * kernel_size * kernel_size)
        elif head == "stp":
            self.stp_hidden = nn.Linear(bottleneck, 100)
            # Zero weights: every transformer starts at the identity (the bias below).
            self.stp_params = nn.Linear(100, 6 * num_kernels)
            nn.init.zeros_(self.stp_params.weight)
            with torch.no_grad():
                self.stp_params.bias.copy_(torch.tensor([1.0, 0, 0, 0, 1, 0]).repeat(num_kernels))
        self.state_predictor = nn.Linear(cond, state_dim) if state_dim else None

    def _lstm(self, index: int, x: Tensor, states: list) -> Tensor:
        """Run ConvLSTM ``index`` one step, keep its raw state, return its normalized output."""
        h, states[index] = self.lstms[index](x, states[index])
        return self.norms[index](h)

    def step(self, image: Tensor, background: Tensor, condition: Tensor, states: list) -> Tensor:
        """image, background [B, C, H, W], condition [B, A+S] -> next image [B, C, H, W]."""
        enc0 = F.relu(self.enc0_norm(self.enc0(image)))  # B c1 H/2 W/2
        hidden = self._lstm(1, self._lstm(0, enc0, states), states)
        enc1 = F.relu(self.enc1(hidden))  # B c2 H/4 W/4
        hidden = self._lstm(3, self._lstm(2, enc1, states), states)
        enc2 = F.relu(self.enc2(hidden))  # B c4 H/8 W/8
        tiled = condition[:, :, None, None].expand(-1, -1, *enc2.shape[2:])
        enc3 = F.relu(self.enc3(torch.cat((enc2, tiled), dim=1)))  # B c4 H/8 W/8
        bottleneck = self._lstm(4, enc3, states)  # B c5 H/8 W/8
        enc4 = F.relu(self.enc4(bottleneck))  # B c5 H/4 W/4
        hidden = torch.cat((self._lstm(5, enc4, states), enc1), dim=1)  # B c6+c2 H/4 W/4
        enc5 = F.relu(self.enc5(hidden))  # B c6+c2 H/2 W/2
        hidden = torch.cat((self._lstm(6, enc5, states), enc0), dim=1)  # B c7+c1 H/2 W/2
        enc6 = self.enc6_norm(self.enc6(hidden))  # B c7+c1 H W

        batch = image.shape[0]
        if self.head == "dna":
            kernels = normalize_kernels(self.enc7(enc6), dim=[1])  # B k*k H W
            transformed = dna_transform(image, kernels).unsqueeze(1)  # B 1 C H W
        else:
            flat = bottleneck.flatten(1)
            if self.head == "cdna":
                kernels = self.cdna_kernels(flat).view(
                    batch, self.num_kernels, self.kernel_size, self.kernel_size
                )
                moved = cdna_transform(image, normalize_kernels(kernels, dim=(2, 3)))
            else:
                theta = self.stp_params(F.relu(self.stp_hidden(flat)))
                moved = stp_transform(image, theta.view(batch, self.num_kernels, 2, 3))
            scratch = torch.sigmoid(self.enc7(enc6)).unsqueeze(1)  # B 1 C H W
            transformed = torch.cat((moved, scratch), dim=1)  # B K+1 C H W
        masks = torch.softmax(self.masks(enc6), dim=1)  # B M H W
        layers = torch.cat((background.unsqueeze(1), transformed), dim=1)  # B M C H W
        return (masks.unsqueeze(2) * layers).sum(1)

    def forward(
        self,
        frames: Tensor,
        actions: Tensor,
        state: Tensor | None,
        steps: int,
        context: int,
        num_true: int = 0,
    ) -> tuple[Tensor, Tensor]:
        """Predict ``steps`` frames; step t sees frame t (or its own prediction) and predicts t+1.

        frames [B, T, C, H, W] in [0, 1], true frames with T >= context; actions
        [B, >= steps, A]; state [B, S], the true state of frame 0 (None if S = 0). Steps
        before ``context`` see true frames; later steps within T give a fresh random
        ``num_true`` items their true frame (scheduled sampling), the others their prediction.
        The predicted state is always fed back, from the first step on, as released.
        Returns images [B, steps, C, H, W] and states [B, steps, S] (of frames 1..steps).
        """
        frames = channels_last_frames(frames)
        if frames.shape[-2:] != self.image_size:
            raise ValueError(f"expected {self.image_size} frames, got {tuple(frames.shape[-2:])}")
        states: list = [None] * len(self.lstms)
        images: list[Tensor] = []  # each B C H W
        predicted_states: list[Tensor] = []  # each B S
        for t in range(steps):
            if t < context:
                image = frames[:, t]
            elif t < frames.shape[1]:
                image = scheduled_mix(frames[:, t], images[-1], num_true)
            else:
                image = images[-1]
            background = image if self.background == "previous" else frames[:, 0]
            condition = actions[:, t] if state is None else torch.cat((actions[:, t], state), 1)
            images.append(self.step(image, background, condition, states))  # B A+S above
            if self.state_predictor is not None:
                state = self.state_predictor(condition)
                predicted_states.append(state)
        if not predicted_states:
            return torch.stack(images, dim=1), actions.new_zeros(len(actions), steps, 0)
        return torch.stack(images, dim=1), torch.stack(predicted_states, dim=1)
