"""Losses and evaluation alignment against hand computations on toy inputs.

Each test runs a task's real code over a network whose outputs are fixed by hand (a stub
``forward``) or over toy frames whose answers are known, and compares with numbers worked
out below: PredNet's time and layer weights and its extrapolation loss, which frame
next-frame evaluation scores against which copy-last guess, CDNA's loss and state
alignment and which action drives each step, and the GAN's targets.
"""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from vidgen.models.action_conditioned import ActionConditionedConvLSTM
from vidgen.models.prednet import PredNet
from vidgen.models.vgan import VideoGenerator
from vidgen.tasks.cdna import ActionConditionedTask
from vidgen.tasks.prednet import PredNetTask
from vidgen.tasks.vgan import VGANTask


def adam(params):
    return torch.optim.Adam(params, lr=1e-3)


def softplus(x: float) -> float:
    """-log(sigmoid(-x)): binary cross-entropy of logit x against target 0."""
    return math.log1p(math.exp(x))


def quiet_trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, **kwargs)  # fmt: skip


# --- PredNet loss -----------------------------------------------------------------------------

# Errors [B=2, T=4, layers=4]. t = 0 is a prediction from the zero state: its 9s must not count.
ERRORS = torch.tensor(
    [[[9.0, 9, 9, 9], [1, 2, 3, 4], [2, 0, 0, 0], [3, 1, 1, 1]]], dtype=torch.float64
).repeat(2, 1, 1)
ERRORS[1] *= 2


def prednet_task(layer_weights, extrap_start_time=None, predictions=None) -> PredNetTask:
    """A 4-layer PredNet task whose network returns ``predictions`` and ERRORS, whatever it
    sees, and records the keywords it was called with."""
    task = PredNetTask(PredNet((3, 2, 2, 2)), adam, layer_loss_weights=layer_weights,
                       extrap_start_time=extrap_start_time)  # fmt: skip
    task.calls = []

    def forward(frames, **kwargs):
        task.calls.append(kwargs)
        return predictions, ERRORS

    task.net.forward = forward
    return task.double()


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        # L_0: clip 0 scores layer 0 at t = 1..3, each weighted 1/3: (1 + 2 + 3) / 3 = 2;
        # clip 1 has twice the errors: 4. Mean over the batch: 3.
        ((1.0, 0.0, 0.0, 0.0), 3.0),
        # L_all: clip 0, t = 1: 1 + 0.1 (2 + 3 + 4) = 1.9; t = 2: 2; t = 3: 3 + 0.1 x 3 = 3.3;
        # (1.9 + 2 + 3.3) / 3 = 2.4. Clip 1: 4.8. Mean: 3.6.
        ((1.0, 0.1, 0.1, 0.1), 3.6),
    ],
)
def test_prednet_loss_weights_time_and_layers(weights, expected):
    task = prednet_task(weights)
    loss = task.loss({"frames": torch.zeros(2, 4, 3, 8, 8, dtype=torch.float64)})
    assert loss.item() == pytest.approx(expected, rel=1e-7)  # 0.1 held in float32
    assert task.calls == [{"extrap_start_time": None}]
    weights_in_time = PredNetTask.time_weights(4, torch.device("cpu"))
    assert weights_in_time.tolist() == pytest.approx([0.0, 1 / 3, 1 / 3, 1 / 3])


def test_prednet_extrapolation_loss_is_half_the_mae_after_t0():
    frames = torch.full((2, 4, 3, 8, 8), 0.5, dtype=torch.float64)
    # Prediction t is off by c_t, + on half the pixels and - on the rest: |error| = c_t.
    offsets = torch.tensor([0.4, 0.1, 0.2, 0.3], dtype=torch.float64)
    signs = torch.ones(8, 8, dtype=torch.float64)
    signs[::2] = -1
    predictions = frames + offsets[None, :, None, None, None] * signs
    task = prednet_task((1.0, 0.1, 0.1, 0.1), extrap_start_time=2, predictions=predictions)
    loss = task.loss({"frames": frames})
    # 0.5 x (0.1 + 0.2 + 0.3) / 3 = 0.1; t = 0 and the layer errors do not count.
    assert loss.item() == pytest.approx(0.1, abs=1e-12)
    assert task.calls == [{"extrap_start_time": 2}]


# --- next-frame evaluation against copy-last ---------------------------------------------------

# Five uniform frames; every scored error is a plain number.
LEVELS = [0.0, 0.1, 0.3, 0.6, 1.0]


class ShiftPredictor(nn.Module):
    """A PredNet stand-in: prediction t is frame t - 1 plus 0.05 (prediction 0 is black), and
    past the frames each prediction is the previous one plus 0.05 (fed back)."""

    num_layers, stack_sizes = 1, (3,)

    def forward(self, frames, extrap_start_time=None, future_steps=0):
        b, t = frames.shape[:2]
        predictions = [torch.zeros_like(frames[:, 0])]
        for step in range(1, t + future_steps):
            seen = frames[:, step - 1] if step <= t else predictions[-1]
            predictions.append(seen + 0.05)
        return torch.stack(predictions, 1), torch.zeros(b, t + future_steps, 1)


def evaluated(next_frame_eval: bool) -> tuple[dict[str, float], dict]:
    frames = torch.tensor(LEVELS).view(1, 5, 1, 1, 1).expand(2, 5, 3, 16, 16)
    task = PredNetTask(ShiftPredictor(), adam, layer_loss_weights=(1.0,), eval_context=2,
                       eval_horizon=3, next_frame_eval=next_frame_eval)  # fmt: skip
    metrics = quiet_trainer().test(task, DataLoader([{"frames": f} for f in frames], 2))[0]
    return metrics, task.per_step_results["test"]


def test_next_frame_evaluation_scores_frame_t_from_frames_before_t():
    metrics, per_step = evaluated(next_frame_eval=True)
    # Frames 2, 3, 4 (0.3, 0.6, 1.0) are scored. The model's guesses are frames 1, 2, 3
    # plus 0.05 (0.15, 0.35, 0.65): errors 0.15, 0.25, 0.35. Copy-last guesses frames 1, 2,
    # 3 (0.1, 0.3, 0.6): errors 0.2, 0.3, 0.4.
    model, copy_last = [0.15, 0.25, 0.35], [0.2, 0.3, 0.4]
    assert per_step["model"]["mae"] == pytest.approx(model, abs=1e-6)
    assert per_step["model"]["mse"] == pytest.approx([e * e for e in model], abs=1e-6)
    assert per_step["copy_last"]["mse"] == pytest.approx([e * e for e in copy_last], abs=1e-6)
    assert per_step["copy_last"]["mae_per_frame_sum"] == pytest.approx(
        [e * 3 * 16 * 16 for e in copy_last], rel=1e-6
    )
    assert metrics["test/mae"] == pytest.approx(0.25, abs=1e-6)
    assert metrics["test/copy_last_mae"] == pytest.approx(0.3, abs=1e-6)
    assert metrics["test/mse_ratio"] == pytest.approx((0.0225 + 0.0625 + 0.1225) / 0.29, rel=1e-5)
    assert metrics["test/copy_last_psnr"] == pytest.approx(
        sum(-10 * math.log10(e * e) for e in copy_last) / 3, abs=1e-4
    )


def test_rollout_evaluation_sees_only_the_context():
    _, per_step = evaluated(next_frame_eval=False)
    # From frames 0, 1 the model says 0.15, 0.20, 0.25 for frames 2, 3, 4: errors 0.15, 0.4,
    # 0.75. Copy-last repeats frame 1 (0.1): errors 0.2, 0.5, 0.9.
    assert per_step["model"]["mae"] == pytest.approx([0.15, 0.4, 0.75], abs=1e-6)
    assert per_step["copy_last"]["mae"] == pytest.approx([0.2, 0.5, 0.9], abs=1e-6)


# --- CDNA: loss alignment and which action drives each step -----------------------------------


def cdna_task(state_dim: int = 2) -> ActionConditionedTask:
    def net(head: str) -> ActionConditionedConvLSTM:
        return ActionConditionedConvLSTM(2, state_dim, head=head, channels=(4, 4, 8, 8, 8, 8, 4),
                                         image_size=(16, 16))  # fmt: skip

    return ActionConditionedTask(net, adam, context_frames=2)


def test_cdna_loss_scores_frames_after_the_context_and_weights_states_1e4():
    # T = 5 uniform frames; step s predicts frame s + 1. The stub's image at step s is frame
    # s + 1 off by d_s, its state off by (e_s, -e_s).
    frames = torch.tensor(LEVELS).view(1, 5, 1, 1, 1).expand(2, 5, 3, 16, 16)
    states = torch.arange(10.0).view(1, 5, 2).expand(2, 5, 2)
    batch = {"frames": frames, "actions": torch.zeros(2, 5, 2), "states": states}
    image_off, state_off = [5.0, 0.1, 0.2, 0.3], [7.0, 1.0, 2.0, 3.0]
    calls = []

    def forward(frames_in, actions, first_state, steps, context, num_true=0):
        calls.append((first_state, steps, context, num_true))
        images = frames[:, 1:] + torch.tensor(image_off).view(1, 4, 1, 1, 1)
        off = torch.tensor(state_off).view(1, 4, 1) * torch.tensor([1.0, -1.0])
        return images, states[:, 1:] + off

    task = cdna_task()
    task.net.forward = forward
    loss = task.eval().loss(batch)
    # Steps 1..3 (frames 2..4) are scored; step 0 (frame 1, a context frame) is not:
    # images (0.01 + 0.04 + 0.09) / 3; states 1e-4 x (1 + 4 + 9) / 3.
    assert loss.item() == pytest.approx(0.14 / 3 + 1e-4 * 14 / 3, rel=1e-6)
    first_state, steps, context, num_true = calls[0]
    assert torch.equal(first_state, states[:, 0]) and (steps, context, num_true) == (4, 2, 0)
    task.train().loss(batch)  # step 0 of k = 900 scheduled sampling: round(2 x 900 / 901)
    assert calls[1][3] == 2


def test_the_action_at_frame_t_drives_the_prediction_of_frame_t_plus_1():
    # As the released prediction_model: step t takes (image t, action t, state t) and
    # predicts frame t + 1 and the state of frame t + 1.
    torch.manual_seed(0)
    net = cdna_task().net.double()
    frames = torch.rand(2, 5, 3, 16, 16, dtype=torch.float64)
    actions = torch.randn(2, 5, 2, dtype=torch.float64)
    state = torch.randn(2, 2, dtype=torch.float64)
    images, states = net(frames, actions, state, 4, 2)
    for t in range(4):
        pushed = actions.clone()
        pushed[:, t] += 1.0
        images_p, states_p = net(frames, pushed, state, 4, 2)
        assert torch.equal(images_p[:, :t], images[:, :t]), t  # frames <= t: untouched
        assert torch.equal(states_p[:, :t], states[:, :t]), t
        assert (images_p[:, t] - images[:, t]).abs().max() > 1e-6, t  # frame t + 1 moves
        assert (states_p[:, t] - states[:, t]).abs().max() > 1e-6, t


def test_cdna_rollout_uses_the_actions_of_the_context_and_the_predicted_steps_only():
    torch.manual_seed(0)
    task = cdna_task(state_dim=0).double().eval()
    frames = torch.rand(2, 2, 3, 16, 16, dtype=torch.float64)
    actions = torch.randn(2, 5, 2, dtype=torch.float64)
    out = task.rollout(frames, 3, actions=actions)
    # Frames 2, 3, 4 are predicted by steps 1, 2, 3: action 4 would drive frame 5.
    pushed = actions.clone()
    pushed[:, 4] += 1.0
    assert torch.equal(task.rollout(frames, 3, actions=pushed), out)
    assert torch.equal(task.rollout(frames, 3, actions=actions[:, :4]), out)
    pushed = actions.clone()
    pushed[:, 1] += 1.0  # the last context frame's action drives the first predicted frame
    assert (task.rollout(frames, 3, actions=pushed)[:, 0] - out[:, 0]).abs().max() > 1e-6


# --- GAN targets ------------------------------------------------------------------------------

REAL_LOGITS, FAKE_LOGITS = [2.0, -0.5], [-1.0, 0.3]


class StubDiscriminator(nn.Module):
    """Fixed logits per clip: REAL_LOGITS for real clips (recognized as all-zero videos, the
    model-range image of frames at 0.5), FAKE_LOGITS for anything else."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))  # something for its optimizer to hold

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        real = (video == 0).flatten(1).all(1)
        logits = torch.where(real, torch.tensor(REAL_LOGITS), torch.tensor(FAKE_LOGITS))
        return logits + 0 * self.unused


def test_gan_targets_real_1_fake_0_for_d_and_fake_1_for_g():
    torch.manual_seed(0)
    task = VGANTask(VideoGenerator(8, 16, channels=4), StubDiscriminator(), adam)
    clips = [{"frames": torch.full((8, 3, 16, 16), 0.5)} for _ in range(2)]
    trainer = quiet_trainer(max_steps=2, limit_val_batches=0)
    trainer.fit(task, DataLoader(clips, batch_size=2))
    logged = {k: v.item() for k, v in trainer.callback_metrics.items()}
    # D: BCE(real, 1) = softplus(-l) and BCE(fake, 0) = softplus(l), each a batch mean, then
    # averaged: 0.5 x (0.3005 + 0.5838) = 0.4422.
    d_real = sum(softplus(-x) for x in REAL_LOGITS) / 2
    d_fake = sum(softplus(x) for x in FAKE_LOGITS) / 2
    assert logged["train/loss_d"] == pytest.approx(0.5 * (d_real + d_fake), rel=1e-5)
    # G: BCE(fake, 1) = softplus(-l), 0.9338, plus 0.1 x mean(mask).
    g_fake = sum(softplus(-x) for x in FAKE_LOGITS) / 2
    expected_g = g_fake + 0.1 * logged["train/mask_mean"]
    assert logged["train/loss_g"] == pytest.approx(expected_g, rel=1e-5)
    assert 0 < logged["train/mask_mean"] < 1
