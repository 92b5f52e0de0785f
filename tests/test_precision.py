"""bf16 mixed precision and ``model.compile`` for every model family, against eager fp32.

Each family is its smallest experiment shrunk further (PredNet: Lotter et al. 2016,
arXiv:1605.08104; CDNA: Finn et al. 2016, arXiv:1605.07157; VGAN: Vondrick et al. 2016,
arXiv:1609.02612; billiards: Fragkiadaki et al. 2016, arXiv:1511.07404) on one fixed
synthetic batch. Tolerances: a compiled network's loss within 1e-4 (relative) of eager, its
gradients within 1e-3 of their largest entry; the loss under CPU bf16 autocast within 5e-2
(relative) of fp32. Compiling with inductor on a CPU takes tens of seconds per graph, so only
PredNet's evaluation graph is compiled in the fast tests; ``-m slow`` compiles the training
step of every family.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

import vidgen
from conftest import compose_train

COMPILE_TOLERANCE, GRADIENT_TOLERANCE, BF16_TOLERANCE = 1e-4, 1e-3, 5e-2
BILLIARDS = ["model.net.glimpse_size=64", "model.net.width=0.125", "model.net.hidden=8",
             "model.net.horizon=3", "model.eval_context=2", "model.eval_horizon=3"]  # fmt: skip
VGAN = ["model.generator.frames=4", "model.generator.size=8", "model.generator.channels=4",
        "model.discriminator.channels=4"]  # fmt: skip
# family -> (overrides, batch frames as T, C, H, W)
FAMILIES = {
    "prednet": (
        [
            "experiment=demo",
            "model.net.stack_sizes=[3,4]",
            "model.net.r_stack_sizes=[3,4]",
            "model.layer_loss_weights=[1.0,0.0]",
            "model.eval_horizon=2",
        ],
        (3, 3, 16, 16),
    ),  # fmt: skip
    "cdna": (
        [
            "experiment=cdna_pusher",
            "model.net.channels=[4,4,8,8,8,8,4]",
            "model.net.image_size=[16,16]",
            "model.eval_horizon=2",
        ],
        (4, 3, 16, 16),
    ),  # fmt: skip
    # vgan_bouncing's G attends at 8x8; at 8x8 frames its features are 4 wide.
    "vgan": (["experiment=vgan_bouncing", *VGAN, "model.generator.attention_side=4"], (4, 3, 8, 8)),
    "vgan_future": (["experiment=vgan_future_bouncing", *VGAN], (4, 3, 8, 8)),
    "billiards_oc": (["experiment=billiards_oc_cpu", *BILLIARDS], (5, 3, 48, 48)),
    "billiards_fc": (["experiment=billiards_fc_cpu", *BILLIARDS], (5, 3, 48, 48)),
}


def fixed_batch(family: str) -> dict[str, torch.Tensor]:
    """A batch of 2 clips of the family's shape, the same at every call."""
    g = torch.Generator().manual_seed(0)
    length = FAMILIES[family][1][0]
    batch = {"frames": torch.rand(2, *FAMILIES[family][1], generator=g)}  # B T C H W
    if family == "cdna":
        batch["actions"] = torch.randn(2, length, 2, generator=g)
    if family.startswith("billiards"):  # two balls wandering from random places; a push at t=0
        start = 150 + 300 * torch.rand(2, 1, 2, 2, generator=g)
        steps = 5 * torch.randn(2, length, 2, 2, generator=g)
        batch["objects/positions"] = start + steps.cumsum(1)  # B T K 2
        batch["objects/forces"] = torch.zeros(2, length, 2, 2)
        batch["objects/forces"][:, 0, 0] = 3e4
        batch["objects/collisions"] = torch.zeros(2, length, 2)
    return batch


def build(family: str, tmp_path: Path, *extra: str) -> pl.LightningModule:
    cfg = compose_train([*FAMILIES[family][0], *extra], tmp_path)
    torch.manual_seed(0)
    task = hydra.utils.instantiate(cfg.model)
    task.config = OmegaConf.to_container(cfg.model, resolve=True)
    return task


def eager_twin(task: pl.LightningModule) -> pl.LightningModule:
    """The same model and weights, not compiled."""
    twin = hydra.utils.instantiate({**task.config, "compile": False})
    twin.load_state_dict(task.state_dict())
    return twin.train(task.training)


def fixed_loss(task: pl.LightningModule, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The task's loss on ``batch``; a VGAN's is its trained G's (not the EMA's) scored by D,
    from fixed noise."""
    torch.manual_seed(1)
    if not hasattr(task, "generator"):
        return task.loss(batch)
    real = task.real_videos(batch["frames"])
    return task.generator_loss(task.generate(real, task.generator), real)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).abs() / b.float().abs()).item()


def flat_gradient(model: torch.nn.Module) -> torch.Tensor:
    """Every parameter's gradient in one vector (zeros for a parameter the loss skips)."""
    grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in model.parameters()]
    return torch.cat([g.flatten() for g in grads])


def quiet_trainer(tmp_path: Path, **kwargs) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, default_root_dir=tmp_path, **kwargs)  # fmt: skip


def one_step(task: pl.LightningModule, batch: dict, tmp_path: Path, **kwargs) -> pl.Trainer:
    """One training step on ``batch``, then (with ``limit_val_batches=1``) validation on it."""
    trainer = quiet_trainer(tmp_path, max_steps=1, **kwargs)
    loader = DataLoader([batch], batch_size=None)
    trainer.fit(task, loader, loader)
    return trainer


def checkpoint_loads_eager(trainer: pl.Trainer, task: pl.LightningModule, batch, tmp_path):
    """The checkpoint of a compiled ``task`` has the eager names, and ``vidgen.load`` gives
    an eager model whose loss is an eager twin's."""
    path = tmp_path / "compiled.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=True)
    assert saved["vidgen"]["model"]["compile"] is True
    twin = eager_twin(task).eval()
    assert saved["state_dict"].keys() == twin.state_dict().keys()
    loaded = vidgen.load(path)
    assert loaded.compile_networks is False and loaded.config["compile"] is False
    with torch.no_grad():
        assert torch.equal(fixed_loss(loaded, batch), fixed_loss(twin, batch))


@pytest.mark.parametrize("family", FAMILIES)
def test_bf16_autocast_loss_is_close_to_fp32(family, tmp_path):
    task, batch = build(family, tmp_path), fixed_batch(family)
    with torch.no_grad():
        full = fixed_loss(task, batch)
        with torch.autocast("cpu", torch.bfloat16):
            mixed = fixed_loss(task, batch)
    assert relative(mixed, full) < BF16_TOLERANCE, (mixed.item(), full.item())


@pytest.mark.parametrize("family", FAMILIES)
def test_bf16_mixed_trains_a_step_with_fp32_weights(family, tmp_path):
    task, batch = build(family, tmp_path), fixed_batch(family)
    before = {k: v.clone() for k, v in task.state_dict().items()}
    trainer = one_step(task, batch, tmp_path, precision="bf16-mixed", limit_val_batches=1)
    assert trainer.global_step >= 1
    after = task.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    for name, value in after.items():
        if value.is_floating_point():
            assert value.dtype in (torch.float32, torch.float64), name
            assert value.isfinite().all(), name
    logged = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    assert logged and all(v.dtype == torch.float32 and v.isfinite() for v in logged.values())


def test_compiled_prednet_matches_eager_and_its_checkpoint_loads_eager(tmp_path):
    """The cheapest family, compiled through the Lightning hook: validation runs compiled,
    the checkpoint keeps the eager names and loads as an eager model."""
    task, batch = build("prednet", tmp_path, "model.compile=true"), fixed_batch("prednet")
    trainer = quiet_trainer(tmp_path, limit_val_batches=1)
    trainer.validate(task, DataLoader([batch], batch_size=None), verbose=False)
    assert task.net._compiled_call_impl is not None
    task.configure_model()  # a second fit, validate or test compiles nothing anew
    with torch.inference_mode():  # as in validation: the graph compiled there
        compiled, eager = fixed_loss(task.eval(), batch), fixed_loss(eager_twin(task), batch)
    assert relative(compiled, eager) < COMPILE_TOLERANCE
    checkpoint_loads_eager(trainer, task, batch, tmp_path)


def test_r1_keeps_the_discriminator_eager(tmp_path):
    task = build("vgan", tmp_path, "model.compile=true", "model.r1_weight=1.0")
    task.configure_model()  # compiling is lazy: nothing is compiled before a forward
    assert task.generator._compiled_call_impl is not None
    assert task.discriminator._compiled_call_impl is None


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_compiled_training_matches_eager(family, tmp_path):
    task, batch = build(family, tmp_path, "model.compile=true"), fixed_batch(family)
    twin = eager_twin(task)
    task.configure_model()
    losses, gradients = [], []
    for model in (task, twin):
        loss = fixed_loss(model, batch)
        loss.backward()
        losses.append(loss)
        gradients.append(flat_gradient(model))
        model.zero_grad(set_to_none=True)
    assert relative(*losses) < COMPILE_TOLERANCE
    scale = gradients[1].abs().max()
    assert (gradients[0] - gradients[1]).abs().max() <= GRADIENT_TOLERANCE * scale
    # Evaluation's rollouts are other graphs; the fast PredNet test validates compiled.
    trainer = one_step(task, batch, tmp_path, limit_val_batches=0)
    assert all(p.isfinite().all() for p in task.parameters())
    checkpoint_loads_eager(trainer, task, batch, tmp_path)
