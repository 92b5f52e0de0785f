"""The action-conditioned CDNA / DNA / STP predictor, its training task and the pusher world."""

from __future__ import annotations

import math

import hydra
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import compose_train, experiments_of, training_losses
from data_prep.synthetic import generate_dataset
from vidgen.cli.train import train
from vidgen.data.dataset import ClipDataset
from vidgen.errors import VidgenError
from vidgen.models.action_conditioned import (
    ActionConditionedConvLSTM,
    cdna_transform,
    dna_transform,
    normalize_kernels,
    scheduled_mix,
    stp_transform,
)
from vidgen.sim import WORLDS
from vidgen.sim.pusher import simulate
from vidgen.tasks.cdna import ActionConditionedTask, num_ground_truth

EXPERIMENTS = experiments_of("cdna")
SMALL = dict(channels=(4, 4, 8, 8, 8, 8, 4), image_size=(16, 16))


def shift_left(image: torch.Tensor, pixels: int) -> torch.Tensor:
    """out[..., w] = image[..., w + pixels], zeros past the edge."""
    return F.pad(image[..., pixels:], (0, pixels))


# --- transforms -----------------------------------------------------------------------------


def test_cdna_grouped_conv_equals_a_per_sample_loop():
    torch.manual_seed(0)
    image, kernels = torch.rand(3, 3, 12, 10), torch.randn(3, 4, 5, 5)
    out = cdna_transform(image, kernels)
    assert out.shape == (3, 4, 3, 12, 10)
    for b in range(3):
        for k in range(4):
            for c in range(3):
                expected = F.conv2d(image[b, c][None, None], kernels[b, k][None, None], padding=2)
                torch.testing.assert_close(out[b, k, c], expected[0, 0])


def test_kernels_normalize_without_softmax():
    kernels = torch.tensor([[-1.0, 0.0, 1.0, 3.0]])
    normalized = normalize_kernels(kernels, dim=[1])
    torch.testing.assert_close(normalized.sum(1), torch.ones(1))
    # relu shift, not softmax: non-positive entries vanish, the rest keep their ratio 1 : 3.
    assert normalized[0, :2].max() < 1e-11
    torch.testing.assert_close(normalized[0, 2:], torch.tensor([0.25, 0.75]))


def test_transforms_move_pixels_the_way_their_parameters_say():
    torch.manual_seed(0)
    image = torch.rand(2, 3, 8, 8)
    one_right = torch.zeros(2, 1, 5, 5)
    one_right[:, :, 2, 3] = 1.0  # cross-correlation: output pixel w reads input pixel w + 1
    torch.testing.assert_close(cdna_transform(image, one_right)[:, 0], shift_left(image, 1))
    dna_kernels = one_right.flatten(1)[:, :, None, None].expand(2, 25, 8, 8)
    torch.testing.assert_close(dna_transform(image, dna_kernels), shift_left(image, 1))
    identity = torch.tensor([[1.0, 0, 0], [0, 1, 0]]).expand(2, 3, 2, 3)
    moved = stp_transform(image, identity)
    assert moved.shape == (2, 3, 3, 8, 8)
    torch.testing.assert_close(moved, image.unsqueeze(1).expand_as(moved))
    one_pixel = identity.clone()
    one_pixel[..., 0, 2] = 2.0 / 8  # x moves by one pixel in normalized [-1, 1] coordinates
    torch.testing.assert_close(stp_transform(image, one_pixel)[..., :-1], image[..., None, :, :, 1:]
                               .expand(2, 3, 3, 8, 7))  # fmt: skip


@pytest.mark.parametrize("head", ["cdna", "dna", "stp"])
def test_zero_motion_reproduces_the_previous_frame(head):
    """Identity kernels / transformers and a mask on them give back the input frame."""
    torch.manual_seed(0)
    net = ActionConditionedConvLSTM(2, 2, head=head, **SMALL)
    with torch.no_grad():
        net.masks.weight.zero_()
        net.masks.bias.fill_(-30.0)
        net.masks.bias[1] = 30.0  # all weight on the first transformed image
        if head == "cdna":
            net.cdna_kernels.weight.zero_()
            net.cdna_kernels.bias.copy_(F.one_hot(torch.tensor(12), 25).float().repeat(10))
        elif head == "dna":
            net.enc7.weight.zero_()
            net.enc7.bias.copy_(F.one_hot(torch.tensor(12), 25).float())
        # STP starts at the identity by construction.
    frames = torch.rand(2, 4, 3, 16, 16)
    images, states = net(frames, torch.randn(2, 4, 2), torch.randn(2, 2), steps=3, context=3)
    assert images.shape == (2, 3, 3, 16, 16) and states.shape == (2, 3, 2)
    torch.testing.assert_close(images, frames[:, :3], atol=1e-5, rtol=0)


def test_masks_composite_the_background():
    net = ActionConditionedConvLSTM(2, 0, head="cdna", background="first", **SMALL)
    with torch.no_grad():
        net.masks.weight.zero_()
        net.masks.bias.fill_(-30.0)
        net.masks.bias[0] = 30.0  # all weight on the background
    frames = torch.rand(2, 3, 3, 16, 16)
    images, states = net(frames, torch.randn(2, 3, 2), None, steps=3, context=2)
    assert states.shape == (2, 3, 0)
    torch.testing.assert_close(images, frames[:, :1].expand(-1, 3, -1, -1, -1))


# --- scheduled sampling ----------------------------------------------------------------------


def test_scheduled_sampling_counts_follow_the_formula():
    # round(32 * 900 / (900 + exp(step / 900))), by hand: exp(4.444) = 85.2 -> 29.23,
    # exp(6.778) = 877.6 -> 16.20; past ~9.85k the count rounds to 0.
    assert num_ground_truth(0, 32, 900) == 32
    assert num_ground_truth(4000, 32, 900) == 29
    assert num_ground_truth(6100, 32, 900) == 16
    assert num_ground_truth(12000, 32, 900) == 0
    assert num_ground_truth(10**9, 32, 900) == 0  # no overflow
    assert num_ground_truth(0, 32, -1) == 0  # k = -1: always its own predictions
    assert num_ground_truth(100, 16, 100) == round(16 * 100 / (100 + math.e))
    # Under DDP the ranks' shares of the global batch add up to the one-process count.
    for step in (0, 3000, 5000, 6100, 7000):
        for world in (2, 4, 8):
            shares = [num_ground_truth(step, 32 // world, 900, r, world) for r in range(world)]
            assert sum(shares) == num_ground_truth(step, 32, 900)
            assert max(shares) - min(shares) <= 1


def test_scheduled_mix_takes_a_fresh_subset_and_keeps_gradients():
    torch.manual_seed(0)
    true = torch.zeros(8, 1, 2, 2)
    predicted = torch.ones(8, 1, 2, 2, requires_grad=True)
    subsets = set()
    for _ in range(5):
        mixed = scheduled_mix(true, predicted, 3)
        from_truth = (mixed == 0).flatten(1).all(1)
        assert int(from_truth.sum()) == 3
        subsets.add(tuple(from_truth.tolist()))
    assert len(subsets) > 1  # a new random subset each time
    mixed.sum().backward()  # no detach: the fed-back predictions get gradients
    assert predicted.grad.flatten(1).sum(1).tolist() == (~from_truth).float().mul(4).tolist()


def test_task_drives_sampling_by_the_global_step_and_evaluates_without_truth(monkeypatch):
    import vidgen.models.action_conditioned as net

    seen: list[int] = []
    real_mix = net.scheduled_mix
    monkeypatch.setattr(net, "scheduled_mix", lambda t, p, n: seen.append(n) or real_mix(t, p, n))
    task = small_task(schedsamp_k=100)
    batch = {"frames": torch.rand(16, 5, 3, 32, 32), "actions": torch.randn(16, 5, 2),
             "states": torch.randn(16, 5, 2)}  # fmt: skip
    for step, expected in ((0, 16), (460, round(16 * 100 / (100 + math.exp(4.6)))), (900, 0)):
        monkeypatch.setattr(ActionConditionedTask, "global_step", property(lambda self, s=step: s))
        seen.clear()
        task.train().loss(batch)
        assert seen == [expected] * 2  # steps 2 and 3 of 4, after the 2 context frames
    seen.clear()
    task.eval().loss(batch)
    assert seen == [0, 0]


# --- pusher world ----------------------------------------------------------------------------


def test_pusher_is_deterministic_and_registered():
    assert WORLDS["pusher"] is simulate
    a, b, c = simulate(20, 32, seed=3), simulate(20, 32, seed=3), simulate(20, 32, seed=4)
    assert a["frames"].shape == (20, 32, 32, 3) and a["frames"].dtype == np.uint8
    assert a["actions"].shape == (20, 2) and a["states"].shape == (20, 2)
    assert a["positions"].shape == (20, 3, 2) and a["touched"].shape == (20, 3)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["frames"], c["frames"])


def test_objects_move_only_when_touched_and_the_agent_follows_its_actions():
    moved_after_touch = 0
    for seed in range(8):
        run = simulate(30, 16, seed=seed)
        for k in np.flatnonzero(run["present"][0]):
            touches = np.flatnonzero(run["touched"][:, k])
            first = touches[0] if len(touches) else len(run["touched"])
            # Before the first contact the object has not moved at all.
            assert (run["positions"][:first, k] == run["positions"][0, k]).all()
            moved = np.abs(run["positions"][first:, k] - run["positions"][0, k]).max(initial=0)
            moved_after_touch += moved > 1e-3
        # The agent goes where it was commanded (actions are in units of max_speed = 0.03).
        step = np.diff(run["states"], axis=0)
        assert np.abs(step - 0.03 * run["actions"][:-1]).mean() < 0.002
    assert moved_after_touch >= 4  # contacts are common, and they push


# --- task and experiments --------------------------------------------------------------------


@pytest.fixture(scope="module")
def pusher_dataset(tmp_path_factory):
    """Pusher at 32x32: 4 train / 1 val / 1 test episodes of 14 frames."""
    out = tmp_path_factory.mktemp("data") / "pusher"
    generate_dataset(out, world="pusher", episodes=6, frames=14, size=32, seed=0)
    return out


def small_task(**kwargs) -> ActionConditionedTask:
    def net(head: str) -> ActionConditionedConvLSTM:
        return ActionConditionedConvLSTM(2, 2, head=head, channels=(4, 4, 8, 8, 8, 8, 4),
                                         image_size=(32, 32))  # fmt: skip

    return ActionConditionedTask(net, lambda params: torch.optim.Adam(params, lr=3e-3), **kwargs)


def test_training_lowers_the_loss_and_rollout_keeps_the_contract(pusher_dataset):
    torch.manual_seed(0)
    items = [ClipDataset(pusher_dataset / "train.h5", 10, in_memory=True)[i] for i in range(4)]
    batch = {k: torch.stack([item[k] for item in items]) for k in ("actions", "states")}
    batch["frames"] = torch.stack([it["frames"] for it in items]).permute(0, 1, 4, 2, 3) / 255.0
    task = small_task()
    losses = training_losses(task, batch, 12)
    assert losses[-1] < 0.5 * losses[0]
    inputs = task.conditioning(batch, 10)
    assert inputs["actions"].shape == (4, 10, 2) and inputs["states"].shape == (4, 1, 2)
    prediction = task.rollout(batch["frames"][:, :2], 8, **inputs)
    assert prediction.shape == (4, 8, 3, 32, 32)
    assert prediction.min() >= 0 and prediction.max() <= 1


def test_user_mistakes_are_one_sentence():
    task = small_task()
    frames = torch.rand(2, 10, 3, 32, 32)
    with pytest.raises(VidgenError, match="model.net.action_dim=5"):
        task.loss(
            {"frames": frames, "actions": torch.zeros(2, 10, 5), "states": torch.zeros(2, 10, 2)}
        )
    with pytest.raises(VidgenError, match="needs states"):
        task.loss({"frames": frames, "actions": torch.zeros(2, 10, 2)})
    with pytest.raises(VidgenError, match="trained with states"):
        task.rollout(frames[:, :2], 8, torch.zeros(2, 10, 2))
    with pytest.raises(VidgenError, match="too few"):
        task.rollout(frames[:, :2], 8, torch.zeros(2, 5, 2), torch.zeros(2, 2, 2))
    with pytest.raises(VidgenError, match=r"model.net.image_size=\[64,64\]"):
        task.check_frame_shape((3, 64, 64))


def test_paper_recipe_and_head_override(tmp_path):
    cfg = compose_train(["experiment=cdna_push", "model.head=dna"], tmp_path)
    assert list(cfg.model.net.channels) == [32, 32, 64, 64, 128, 64, 32]
    assert (cfg.data.batch_size, cfg.data.length, cfg.model.context_frames) == (32, 10, 2)
    assert cfg.model.optimizer.lr == 1e-3 and cfg.model.schedsamp_k == 900
    assert cfg.trainer.max_epochs * cfg.data.samples_per_epoch // cfg.data.batch_size == 100_000
    task = hydra.utils.instantiate(cfg.model)
    assert task.net.head == "dna" and task.net.masks.out_channels == 2
    assert set(EXPERIMENTS) >= {"cdna_push", "cdna_bair", "cdna_pusher", "dna_push", "stp_bair"}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_fast_dev_run_of_every_experiment(experiment, tmp_path, pusher_dataset):
    overrides = [
        f"experiment={experiment}",
        f"data.root={pusher_dataset}",
        "~data.test_split" if "push" in experiment and "pusher" not in experiment else "",
        "data.num_workers=0",
        "data.batch_size=2",
        "data.length=12" if "bair" in experiment else "data.length=10",
        "model.net.action_dim=2",
        "model.net.state_dim=2",
        "model.net.image_size=[32,32]",
        "model.net.channels=[8,8,16,16,16,16,8]",  # the wiring, not the paper's compute
        "logger=csv",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "+trainer.fast_dev_run=true",
    ]
    metrics = train(compose_train([o for o in overrides if o], tmp_path))
    for key in ("test/psnr", "test/copy_last_psnr", "test/shuffled_actions_psnr"):
        assert math.isfinite(metrics[key])
