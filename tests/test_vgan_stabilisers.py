"""VGAN stabilisers: spectral norm (Miyato et al. 2018), minibatch std (Karras et al. 2018),
a per-frame discriminator (Clark et al. 2019), self-attention (Zhang et al. 2019), hinge loss
(Lim & Ye 2017), R1 (Mescheder et al. 2018), generator EMA (Yazici et al. 2019) and two
time-scale optimizers (Heusel et al. 2017); all off in the paper's default config."""

from __future__ import annotations

import functools
import pickle

import hydra
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.nn.utils import parametrize

from benchmarks.vgan import PAPER
from conftest import compose_train
from test_vgan import SMALL, adam, clips_loader, convs, quiet_trainer
from vidgen.cli.train import train
from vidgen.errors import VidgenError
from vidgen.loading import check_config, load
from vidgen.models.vgan import (
    FutureGenerator,
    MinibatchStd,
    SelfAttention,
    VideoDiscriminator,
    VideoGenerator,
)
from vidgen.tasks.adversarial import discriminator_loss, generator_adversarial_loss, r1_penalty
from vidgen.tasks.media import GeneratedParts
from vidgen.tasks.vgan import VGANFutureTask, VGANTask, to_unit

SIZE_16 = [
    "model.generator.frames=8",
    "model.generator.size=16",
    "model.generator.channels=4",
    "model.discriminator.channels=4",
]


def task_with(discriminator: VideoDiscriminator | None = None, **options) -> VGANTask:
    d = discriminator or VideoDiscriminator(8, 16, 4)
    return VGANTask(VideoGenerator(8, 16, channels=4), d, adam, **options)


def one_step(task, tmp_path, *callbacks: pl.Callback) -> pl.Trainer:
    """One D and one G step on 4 bouncing-ball clips; the trainer is returned."""
    trainer = quiet_trainer(
        max_steps=2, limit_val_batches=1, default_root_dir=tmp_path, callbacks=list(callbacks)
    )
    trainer.fit(task, clips_loader(8, 16))
    return trainer


def test_spectral_norm_keeps_every_conv_at_unit_norm(tmp_path):
    d = VideoDiscriminator(8, 16, 8, spectral_norm=True, batch_norm=False, frame_samples=2)
    layers = convs(d)
    assert len(layers) == 6  # three convs in each judge at 16x16
    assert all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in d.modules())
    # The released init is applied to the raw weights, before they are normalized.
    raw = torch.cat([m.parametrizations.weight.original.flatten() for m in layers])
    assert abs(raw.std().item() - 0.01) < 1e-3
    one_step(task_with(d), tmp_path)
    with torch.no_grad():
        for _ in range(5):  # train-mode passes run more power iterations
            d.train()(torch.randn(4, 8, 3, 16, 16))
        for m in layers:
            sigma = torch.linalg.matrix_norm(m.weight.flatten(1), 2).item()
            assert sigma == pytest.approx(1.0, abs=0.1)
    # Spawned DDP workers get a pickled model; torch pickles parametrized layers only by state.
    clone = pickle.loads(pickle.dumps(d.eval()))
    assert all(parametrize.is_parametrized(m, "weight") for m in convs(clone))
    assert not clone.training and clone.state_dict().keys() == d.state_dict().keys()
    assert all(torch.equal(v, d.state_dict()[k]) for k, v in clone.state_dict().items())
    videos = torch.randn(2, 8, 3, 16, 16)
    logits = []
    for judge in (clone, d):
        torch.manual_seed(1)  # the frame judge's picks
        logits.append(judge(videos))
    torch.testing.assert_close(*logits)


def test_minibatch_std_hand_computed_and_couples_the_batch():
    x = torch.randn(8, 2, 1, 2, 2)
    out = MinibatchStd()(x)
    assert out.shape == (8, 3, 1, 2, 2) and torch.equal(out[:, :2], x)
    # Batch 8: groups of 4, clip i with the clips of the same i % 2.
    for i in range(8):
        group = x[i % 2 :: 2]
        expected = (group.var(0, unbiased=False) + 1e-8).sqrt().mean()
        torch.testing.assert_close(out[i, 2], expected.expand(1, 2, 2))
    odd = MinibatchStd()(x[:6])  # 4 does not divide 6: one group of all six
    expected = (x[:6].var(0, unbiased=False) + 1e-8).sqrt().mean()
    torch.testing.assert_close(odd[:, 2], expected.expand(6, 1, 2, 2))

    def others_moved(minibatch_std: bool) -> bool:
        torch.manual_seed(0)
        d = VideoDiscriminator(8, 16, 4, minibatch_std=minibatch_std, batch_norm=False)
        d = d.double().eval()
        videos = torch.randn(4, 8, 3, 16, 16, dtype=torch.double)
        changed = videos.clone()
        changed[0] = torch.randn_like(changed[0])
        with torch.no_grad():
            before, after = d(videos), d(changed)
        assert before.shape == (4,)
        return not torch.allclose(before[1:], after[1:], rtol=1e-9, atol=0)

    assert others_moved(True) and not others_moved(False)


def test_frame_discriminator_sums_the_logits_of_distinct_random_frames(tmp_path):
    torch.manual_seed(0)
    videos = torch.randn(3, 8, 3, 16, 16)

    def judged(frame_samples: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(20 calls' logits [20, 3, 2], the 3-D judge's [3], every frame's logit [3, 8])."""
        d = VideoDiscriminator(8, 16, 4, frame_samples=frame_samples).eval()
        with torch.no_grad():
            calls = torch.stack([d(videos) for _ in range(20)])
            per_frame = d.frame_net(videos.flatten(0, 1)).view(3, 8)
            return calls, d.net(videos.transpose(1, 2)).flatten(), per_frame

    calls, video_logits, per_frame = judged(8)
    assert calls.shape == (20, 3, 2)
    torch.testing.assert_close(calls[..., 0], video_logits.expand(20, 3))
    torch.testing.assert_close(calls[..., 1], per_frame.sum(1).expand(20, 3))  # every frame
    calls, _, per_frame = judged(2)
    pairs = per_frame[:, :, None] + per_frame[:, None, :]  # [3, 8, 8]: frames i and j
    distinct = ~torch.eye(8, dtype=torch.bool)
    for clip in range(3):
        gaps = (calls[:, clip, 1, None] - pairs[clip][distinct][None]).abs()
        assert (gaps.min(1).values < 1e-5).all()  # each call: two distinct frames
        assert calls[:, clip, 1].std() > 0  # drawn afresh per call
    assert VideoDiscriminator(8, 16, 4).frame_net is None  # the paper's D: one logit, [B]
    with pytest.raises(ValueError, match=r"frame_samples must be in \[0, 8\], got 9"):
        VideoDiscriminator(8, 16, 4, frame_samples=9)

    task = task_with(VideoDiscriminator(8, 16, 4, frame_samples=4))
    before = {k: v.clone() for k, v in task.discriminator.frame_net.state_dict().items()}
    one_step(task, tmp_path)
    after = task.discriminator.frame_net.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_self_attention_by_hand_and_where_it_goes(tmp_path):
    torch.manual_seed(0)
    block = SelfAttention(16).double()
    x = torch.randn(2, 16, 2, 3, 3, dtype=torch.double)
    torch.testing.assert_close(block(x), x)  # gamma starts at 0: the identity
    with torch.no_grad():
        block.gamma.fill_(0.7)
        for conv in (block.query, block.key, block.value):
            conv.weight.normal_()
    tokens = x.flatten(2)  # B C N
    q, k, v = (
        torch.einsum("oc,bcn->bon", f.weight[..., 0], tokens) + f.bias[:, None]
        for f in (block.query, block.key, block.value)
    )
    weights = torch.softmax(torch.einsum("bcn,bcm->bnm", q, k), dim=-1)  # query n over keys m
    expected = x + 0.7 * torch.einsum("bcm,bnm->bcn", v, weights).view_as(x)
    torch.testing.assert_close(block(x), expected)
    assert q.shape[1] == 2  # C/8 channels for queries and keys

    def attention_inputs(module: nn.Module, video_or_code: torch.Tensor) -> list[tuple]:
        shapes = []
        for m in module.modules():
            if isinstance(m, SelfAttention):
                m.register_forward_hook(lambda _, args, out: shapes.append(tuple(args[0].shape)))
        module(video_or_code)
        return shapes

    g = VideoGenerator(8, 32, channels=4, attention_side=8)
    assert attention_inputs(g, torch.randn(2, 100)) == [(2, 8, 2, 8, 8)]  # foreground only
    d = VideoDiscriminator(8, 32, 4, attention_side=8, frame_samples=2)
    videos = torch.randn(2, 8, 3, 32, 32)
    assert attention_inputs(d, videos) == [(2, 8, 2, 8, 8), (4, 8, 8, 8)]  # both judges
    for paper in (VideoGenerator(8, 32, channels=4), VideoDiscriminator(8, 32, 4)):
        assert not any(isinstance(m, SelfAttention) for m in paper.modules())
    with pytest.raises(ValueError, match=r"attention_side must be 0 or one of \[16, 8, 4\]"):
        VideoDiscriminator(8, 32, 4, attention_side=32)
    with pytest.raises(ValueError, match=r"attention_side must be 0 or one of \[4, 8, 16\]"):
        VideoGenerator(8, 32, channels=4, attention_side=2)

    task = VGANTask(
        VideoGenerator(8, 16, channels=4, attention_side=8),
        VideoDiscriminator(8, 16, 4, attention_side=8),
        adam,
    )
    one_step(task, tmp_path)
    gammas = [m.gamma for m in task.modules() if isinstance(m, SelfAttention)]
    assert len(gammas) == 2 and all(gamma.item() != 0 for gamma in gammas)  # both trained


def test_hidden_head_scores_a_midpoint_below_both_ends():
    torch.manual_seed(0)
    d = VideoDiscriminator(8, 16, 4, head_width=6, frame_samples=2)
    for judge in (d.net, d.frame_net):
        kinds = [type(m).__name__ for m in judge][-3:]
        assert kinds[1:] == ["LeakyReLU", kinds[0]] and judge[-3].out_channels == 6
        assert judge[-1].kernel_size == (1,) * (judge[-1].weight.dim() - 2)
    assert d(torch.randn(3, 8, 3, 16, 16)).shape == (3, 2)
    # What the paper's linear head cannot do: score features f at the midpoint of a and b
    # below both. With the hidden layer, weights that compute -|f| do it.
    head = VideoDiscriminator(8, 16, 4, head_width=2).net[-3:].eval()
    with torch.no_grad():
        head[0].weight.zero_()
        head[0].bias.zero_()
        head[0].weight[0, 0, 0, 0, 0] = 1.0  # feature 0 at one position, +
        head[0].weight[1, 0, 0, 0, 0] = -1.0  # and -
        head[2].weight.fill_(-1.0)  # -(relu(f) + relu(-f)), up to the leak
        features = torch.zeros(3, 8, 2, 4, 4)  # D's last features at 16x16: 8 x 2x4x4
        features[0, 0, 0, 0, 0], features[2, 0, 0, 0, 0] = 1.0, -1.0  # a, midpoint, b
        a, mid, b = head(features).flatten().tolist()
    assert mid > a and mid > b
    with pytest.raises(ValueError, match="head_width must be 0"):
        VideoDiscriminator(8, 16, 4, head_width=-1)


def test_hinge_and_bce_losses_by_hand():
    real, fake = torch.tensor([2.0, -0.5, 0.3]), torch.tensor([-1.0, 0.3, 1.5])
    # relu(1 - real) = 0, 1.5, 0.7 and relu(1 + fake) = 0, 1.3, 2.5: means 2.2/3 and 3.8/3.
    assert discriminator_loss(real, fake, "hinge").item() == pytest.approx(0.5 * 6.0 / 3)
    assert generator_adversarial_loss(fake, "hinge").item() == pytest.approx(-0.8 / 3)
    softplus = torch.nn.functional.softplus
    bce_d = 0.5 * (softplus(-real).mean() + softplus(fake).mean())
    assert discriminator_loss(real, fake).item() == pytest.approx(bce_d.item())
    assert generator_adversarial_loss(fake).item() == pytest.approx(softplus(-fake).mean().item())
    # Two judges per clip ([B, 2]): each judge's batch mean, summed.
    real2, fake2 = torch.stack([real, real.flip(0)], 1), torch.stack([fake, fake], 1)
    assert discriminator_loss(real2, fake2, "hinge").item() == pytest.approx(0.5 * 12.0 / 3)
    assert generator_adversarial_loss(fake2, "hinge").item() == pytest.approx(-1.6 / 3)
    with pytest.raises(VidgenError, match="one of bce, hinge, got 'wgan'"):
        discriminator_loss(real, fake, "wgan")
    with pytest.raises(VidgenError, match="adversarial_loss must be one of"):
        task_with(adversarial_loss="lsgan")


class QuadraticCritic(nn.Module):
    """D(x) = s / 2 * ||x||^2, so grad_x D = s x and R1 = s^2 E ||x||^2."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(3.0))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.scale * video.flatten(1).square().sum(1)


def test_r1_penalty_matches_the_closed_form_and_trains_d(tmp_path):
    real = torch.randn(4, 2, 3, 4, 4, requires_grad=True)
    critic = QuadraticCritic()
    penalty = r1_penalty(critic(real), real)
    norms = real.detach().flatten(1).square().sum(1).mean()
    assert penalty.item() == pytest.approx(9.0 * norms.item(), rel=1e-5)
    penalty.backward()  # d/ds s^2 E||x||^2 = 2 s E||x||^2: the graph reaches D
    assert critic.scale.grad.item() == pytest.approx(6.0 * norms.item(), rel=1e-5)

    def trained_d(r1_weight: float) -> VGANTask:
        torch.manual_seed(0)
        task = task_with(r1_weight=r1_weight)
        one_step(task, tmp_path)
        return task

    with_r1, without = trained_d(10.0), trained_d(0.0)
    assert with_r1.trainer.callback_metrics["train/r1"] > 0
    assert "train/r1" not in without.trainer.callback_metrics
    d_with, d_without = with_r1.discriminator.state_dict(), without.discriminator.state_dict()
    assert any(not torch.equal(d_with[k], d_without[k]) for k in d_with)
    with pytest.raises(VidgenError, match="r1_weight must be"):
        task_with(r1_weight=-1.0)


def test_ema_generator_averages_and_samples(tmp_path):
    task = task_with(ema_decay=0.5)
    start = {k: v.clone() for k, v in task.generator.state_dict().items()}
    ema = task.generator_ema
    assert all(not p.requires_grad for p in ema.parameters())
    assert any(k.startswith("generator_ema.") for k in task.state_dict())
    one_step(task, tmp_path)
    live, averaged = task.generator.state_dict(), ema.state_dict()
    moved = 0
    for name, param in task.generator.named_parameters():
        torch.testing.assert_close(averaged[name], 0.5 * start[name] + 0.5 * param.detach())
        moved += not torch.equal(averaged[name], param) and not torch.equal(param, start[name])
    assert moved > 0
    for name, buffer in task.generator.named_buffers():  # batch-norm statistics copied
        assert torch.equal(averaged[name], buffer)
    assert not torch.equal(averaged["decoder.video_head.weight"], live["decoder.video_head.weight"])

    task.eval()
    assert not ema.training  # the EMA generator follows the task's mode
    parts = task.sample(3, seed=0)
    with torch.no_grad():
        z = ema.sample_noise(3, torch.Generator().manual_seed(0))
        torch.testing.assert_close(parts.video, to_unit(ema(z)).video)
        assert not torch.allclose(parts.video, to_unit(task.generator(z)).video)
    with pytest.raises(VidgenError, match="ema_decay must be"):
        task_with(ema_decay=1.0)


def test_future_task_predicts_with_the_ema_generator():
    torch.manual_seed(0)
    task = VGANFutureTask(
        FutureGenerator(8, 16, 4), VideoDiscriminator(8, 16, 4), adam, ema_decay=0.9
    )
    task.eval()
    with torch.no_grad():
        task.generator_ema.decoder.video_head.bias.add_(0.5)  # as if it had averaged steps
        frames = torch.rand(2, 1, 3, 16, 16)
        out = task.rollout(frames, 7)
        expected = (task.generator_ema(frames[:, -1] * 2 - 1).video[:, 1:] + 1) / 2
        torch.testing.assert_close(out, expected)
        live = (task.generator(frames[:, -1] * 2 - 1).video[:, 1:] + 1) / 2
        assert not torch.allclose(out, live)
        image = frames[:, 0] * 2 - 1
        torch.testing.assert_close(task.separate(frames[:, 0]), to_unit(task.generator_ema(image)))
        clips = {"frames": torch.rand(2, 8, 3, 16, 16)}
        real = clips["frames"] * 2 - 1
        ema_loss = task.generator_loss(task.generator_ema(real[:, 0]), real)
        torch.testing.assert_close(task.loss(clips), ema_loss)


def test_two_time_scale_optimizers():
    slow_g = functools.partial(torch.optim.Adam, lr=1e-4, betas=(0.5, 0.999))
    fast_d = functools.partial(torch.optim.Adam, lr=4e-4, betas=(0.5, 0.999))
    task = VGANTask(
        VideoGenerator(8, 16, channels=4),
        VideoDiscriminator(8, 16, 4),
        slow_g,
        discriminator_optimizer=fast_d,
    )
    opt_g, opt_d = task.configure_optimizers()
    assert opt_g.param_groups[0]["lr"] == 1e-4 and opt_d.param_groups[0]["lr"] == 4e-4
    assert opt_g.param_groups[0]["params"][0] is next(task.generator.parameters())
    assert opt_d.param_groups[0]["params"][0] is next(task.discriminator.parameters())
    same = task_with().configure_optimizers()  # null: D shares G's factory
    assert [o.param_groups[0]["lr"] for o in same] == [2e-4, 2e-4]


def test_default_configs_are_the_paper_recipe(tmp_path):
    for experiment in ("vgan_golf", "vgan_future_golf"):
        model = compose_train([f"experiment={experiment}", *SIZE_16], tmp_path).model
        assert (model.adversarial_loss, model.r1_weight) == ("bce", 0.0)
        assert model.ema_decay is None and model.discriminator_optimizer is None
        d = model.discriminator
        assert (d.batch_norm, d.spectral_norm, d.minibatch_std) == (True, False, False)
        assert d.frame_samples == d.attention_side == model.generator.get("attention_side", 0) == 0
        task = hydra.utils.instantiate(model)
        assert task.generator_ema is None and task.sampling_generator is task.generator
        assert task.discriminator_optimizer_factory is None
        layers = dict(task.discriminator.net.named_children())
        assert not any(parametrize.is_parametrized(m) for m in layers.values())
        # The paper's D layout, so checkpoints saved before the stabilisers still load.
        kinds = [type(m).__name__ for m in layers.values()]
        assert kinds == ["Conv3d", "LeakyReLU", "Conv3d", "BatchNorm3d", "LeakyReLU", "Conv3d"]


def test_stabilised_config_trains_saves_and_loads(tmp_path):
    overrides = [
        "experiment=vgan_golf",
        *SIZE_16,
        "model.discriminator.spectral_norm=true",
        "model.discriminator.minibatch_std=true",
        "model.discriminator.batch_norm=false",
        "model.discriminator.frame_samples=2",
        "model.discriminator.attention_side=8",
        "model.generator.attention_side=8",
        "model.adversarial_loss=hinge",
        "model.r1_weight=1.0",
        "model.ema_decay=0.99",
        "model.discriminator_optimizer={_target_:torch.optim.Adam,_partial_:true,lr:4e-4,"
        "betas:[0.0,0.9]}",
    ]
    config = OmegaConf.to_container(compose_train(overrides, tmp_path).model, resolve=True)
    checked = check_config(config, tmp_path / "run.ckpt")  # the loader's allow-list takes it
    task = hydra.utils.instantiate(checked)
    trainer = one_step(task, tmp_path, GeneratedParts())
    metrics = dict(trainer.callback_metrics)
    assert all(torch.isfinite(metrics[k]) for k in ("train/loss_d", "train/loss_g", "train/r1"))
    assert 0 < trainer.validate(task, clips_loader(8, 16))[0]["val/d_fake"] < 1
    assert list(tmp_path.glob("samples/epoch_*_video.png"))  # sampled by the EMA generator
    assert trainer.optimizers[1].param_groups[0]["lr"] == 4e-4
    task.config = checked
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    rebuilt = load(tmp_path / "run.ckpt")  # the EMA generator and D's power iterates too
    for name, value in task.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[name], value), name


def test_ddp_simulated_with_every_stabiliser(tmp_path, tiny_overrides):
    cfg = compose_train(
        [
            "experiment=vgan_bouncing",
            *tiny_overrides,
            *SMALL,
            "model.discriminator.spectral_norm=true",
            "model.discriminator.minibatch_std=true",
            "model.discriminator.batch_norm=false",
            "model.discriminator.frame_samples=2",
            "model.adversarial_loss=hinge",
            "model.r1_weight=1.0",
            "model.ema_decay=0.9",
            "trainer=ddp_sim",
            "trainer.devices=2",
            "trainer.max_epochs=1",
            "callbacks=none",
            "test=false",
        ],
        tmp_path,
    )
    train(cfg)  # spawned workers unpickle spectral norm; R1 double-backwards under DDP


def test_benchmark_paper_recipe_resets_every_stabiliser(tmp_path):
    bench = compose_train(["experiment=vgan_bouncing", *PAPER], tmp_path).model
    paper = compose_train(["experiment=vgan_golf"], tmp_path).model
    recipe = ["adversarial_loss", "r1_weight", "ema_decay", "discriminator_optimizer"]
    recipe += ["mask_penalty", "optimizer"]
    assert [bench[k] for k in recipe] == [paper[k] for k in recipe]
    sizes = ("frames", "size", "channels")
    assert {k: v for k, v in bench.discriminator.items() if k not in sizes} == {
        k: v for k, v in paper.discriminator.items() if k not in sizes
    }
    assert bench.generator.attention_side == paper.generator.attention_side == 0
