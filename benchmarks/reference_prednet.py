"""A straightforward PredNet step (Lotter et al. 2016), written the way a first port would be:
one conv per gate as in the Keras code, default NCHW memory, nothing fused or reused.

It shares the weights of a ``vidgen.models.PredNet``, so tests use it as an independent check
of the forward pass and ``benchmarks/prednet.py`` as the speed baseline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vidgen.models import PredNet, hard_sigmoid


def reference_prednet(model: PredNet, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """frames [B, T, C, H, W] -> (predictions [B, T, C, H, W], errors [B, T, L])."""
    n = model.num_layers
    frames = frames.contiguous()
    b, steps, _, h, w = frames.shape
    r = [frames.new_zeros(b, model.r_stack_sizes[i], h >> i, w >> i) for i in range(n)]
    c = [x.clone() for x in r]
    e = [frames.new_zeros(b, 2 * model.stack_sizes[i], h >> i, w >> i) for i in range(n)]
    preds, errors = [], []
    for t in range(steps):
        for i in reversed(range(n)):
            inputs = [r[i], e[i]]
            if i < n - 1:  # nearest x2 upsampling of the already-updated R_{i+1}(t)
                inputs.append(r[i + 1].repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))
            inp = torch.cat(inputs, dim=1)
            conv, k = model.cells[i].conv, model.r_stack_sizes[i]
            z = [
                F.conv2d(
                    inp, conv.weight[g * k : (g + 1) * k], conv.bias[g * k : (g + 1) * k], 1, "same"
                )
                for g in range(4)
            ]
            c[i] = hard_sigmoid(z[1]) * c[i] + hard_sigmoid(z[0]) * torch.tanh(z[3])
            r[i] = hard_sigmoid(z[2]) * torch.tanh(c[i])
        a = frames[:, t]
        for i in range(n):
            ahat = F.relu(model.ahat_convs[i](r[i]))
            if i == 0:
                ahat = torch.minimum(ahat, torch.tensor(model.pixel_max))
                preds.append(ahat)
            e[i] = torch.cat([F.relu(ahat - a), F.relu(a - ahat)], dim=1)
            errors.append(e[i].mean(dim=(1, 2, 3)))
            if i < n - 1:
                a = F.max_pool2d(F.relu(model.a_convs[i](e[i])), 2)
    return torch.stack(preds, dim=1), torch.stack(errors, dim=1).reshape(b, steps, n)
