"""Adversarial training shared by the two VGAN tasks (Vondrick, Pirsiavash & Torralba 2016,
arXiv:1609.02612), with optional stabilisers; their defaults are the paper's recipe.

Manual optimization, as the released code iterates: one discriminator step on a real and a
fake batch (the two losses averaged), then one generator step. The paper's losses are BCE,
with the non-saturating generator target "real", and one Adam per network. Stabilisers:

- hinge loss (``adversarial_loss="hinge"``): Lim & Ye (2017), "Geometric GAN",
  arXiv:1705.02894, as used by Miyato et al. (2018), arXiv:1802.05957;
- R1 penalty (``r1_weight``): Mescheder, Geiger & Nowozin (2018), "Which Training Methods
  for GANs do actually Converge?", ICML, arXiv:1801.04406;
- generator EMA (``ema_decay``): Yazici et al. (2019), "The Unusual Effectiveness of
  Averaging in GAN Training", ICLR, arXiv:1806.04498; Karras et al. (2018) sample from one;
- D's own optimizer (``discriminator_optimizer``), the two time-scale update rule: Heusel et
  al. (2017), "GANs Trained by a Two Time-Scale Update Rule ...", NIPS, arXiv:1706.08500.

Under DDP the discriminator step leaves the generator without gradients, so ``setup`` turns
on ``find_unused_parameters`` whatever strategy string the user chose. Nothing here is
scheduled by epoch or step; note that ``trainer.global_step`` (and so ``trainer.max_steps``)
counts optimizer steps, two per iteration, on any number of devices.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from pytorch_lightning.strategies import DDPStrategy
from torch import Tensor, nn

from vidgen.errors import VidgenError
from vidgen.models.vgan import VideoParts
from vidgen.tasks.base import CompiledNetworks, OptimizerFactory

ADVERSARIAL_LOSSES = ("bce", "hinge")


def _checked_kind(kind: str) -> str:
    if kind not in ADVERSARIAL_LOSSES:
        raise VidgenError(
            f"adversarial_loss must be one of {', '.join(ADVERSARIAL_LOSSES)}, got {kind!r}."
        )
    return kind


def _judged(losses: Tensor) -> Tensor:
    """Elementwise losses [B] or [B, J] (J judges of each clip) -> each judge's batch mean,
    summed over judges."""
    return losses.view(len(losses), -1).mean(0).sum()


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, kind: str = "bce") -> Tensor:
    """D's loss on logits [B] or [B, J]: the real and the fake term, each a batch mean (summed
    over judges), averaged."""
    if _checked_kind(kind) == "hinge":
        return 0.5 * (_judged(F.relu(1 - real_logits)) + _judged(F.relu(1 + fake_logits)))
    return 0.5 * (_judged(F.softplus(-real_logits)) + _judged(F.softplus(fake_logits)))


def generator_adversarial_loss(fake_logits: Tensor, kind: str = "bce") -> Tensor:
    """G's adversarial loss on D's logits for its fakes [B] or [B, J]; BCE is the
    non-saturating one."""
    if _checked_kind(kind) == "hinge":
        return _judged(-fake_logits)
    return _judged(F.softplus(-fake_logits))


def r1_penalty(real_logits: Tensor, real: Tensor) -> Tensor:
    """E ||grad_x D(x)||^2 over the real clips ``real`` [B, ...], which must require grad;
    the graph is kept so that the penalty trains D."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()


@torch.no_grad()
def update_ema(ema: nn.Module, live: nn.Module, decay: float) -> None:
    """p_ema = decay * p_ema + (1 - decay) * p; buffers (batch-norm statistics) are copied."""
    for averaged, param in zip(ema.parameters(), live.parameters(), strict=True):
        averaged.lerp_(param, 1 - decay)
    for averaged, buffer in zip(ema.buffers(), live.buffers(), strict=True):
        averaged.copy_(buffer)


class AdversarialTraining(CompiledNetworks):
    """The GAN half shared by both tasks; they provide ``generate`` and ``generator_penalty``
    and call ``init_adversarial`` after their module init. Expects ``self.optimizer_factory``.
    ``compile`` compiles G and D (not the EMA copy, which only samples; nor D under R1).
    """

    @property
    def compiled_networks(self) -> tuple[str, ...]:
        # R1 differentiates D's input gradient again: compiled graphs have no double backward.
        return ("generator",) if self.r1_weight > 0 else ("generator", "discriminator")

    def init_adversarial(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        discriminator_optimizer: OptimizerFactory | None = None,
        adversarial_loss: str = "bce",
        r1_weight: float = 0.0,
        ema_decay: float | None = None,
        compile: bool = False,
    ) -> None:
        """The networks and the stabilisers (module docstring); the defaults are the paper's."""
        if r1_weight < 0:
            raise VidgenError(f"r1_weight must be 0 (off) or positive, got {r1_weight}.")
        if ema_decay is not None and not 0 < ema_decay < 1:
            raise VidgenError(f"ema_decay must be null (off) or in (0, 1), got {ema_decay}.")
        self.automatic_optimization = False
        self.compile_networks = compile
        self.generator, self.discriminator = generator, discriminator
        self.discriminator_optimizer_factory = discriminator_optimizer
        self.adversarial_loss = _checked_kind(adversarial_loss)
        self.r1_weight, self.ema_decay = r1_weight, ema_decay
        # A submodule: saved in checkpoints, moved across devices, in the task's train/eval mode.
        self.generator_ema = None
        if ema_decay is not None:
            self.generator_ema = copy.deepcopy(generator).requires_grad_(False)

    @property
    def sampling_generator(self) -> nn.Module:
        """What samples and predicts: the EMA generator when kept, else the trained one."""
        return self.generator if self.generator_ema is None else self.generator_ema

    def generate(self, real: Tensor, generator: nn.Module) -> VideoParts:
        """``generator``'s fakes for a batch of real videos ``[B, T, C, H, W]`` in [-1, 1]."""
        raise NotImplementedError

    def generator_penalty(self, parts: VideoParts, real: Tensor) -> Tensor:
        raise NotImplementedError

    def real_videos(self, frames: Tensor) -> Tensor:
        """A batch's [0, 1] windows -> the generator's length, in [-1, 1]."""
        length = self.generator.frames
        if frames.shape[1] < length:
            raise VidgenError(
                f"windows of {frames.shape[1]} frames are shorter than the {length} frames "
                f"this generator makes; set data.length={length}."
            )
        return frames[:, :length] * 2 - 1

    def check_frame_shape(self, shape: tuple[int, int, int]) -> None:
        size = self.generator.size
        if tuple(shape) != (3, size, size):
            raise VidgenError(
                f"frames of {'x'.join(map(str, shape))} do not fit this VGAN: it makes "
                f"3x{size}x{size} frames; resize the data or set the model's size."
            )

    def generator_loss(self, parts: VideoParts, real: Tensor) -> Tensor:
        fake_logits = self.discriminator(parts.video)
        adversarial = generator_adversarial_loss(fake_logits, self.adversarial_loss)
        return adversarial + self.generator_penalty(parts, real)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        real = self.real_videos(batch["frames"])  # B T C H W in [-1, 1]
        opt_g, opt_d = self.optimizers()
        parts = self.generate(real, self.generator)

        # D's own view of the real clips: R1 differentiates its logits with respect to them.
        real_d = real.detach().requires_grad_(self.r1_weight > 0)
        real_logits = self.discriminator(real_d)
        fake_logits = self.discriminator(parts.video.detach())
        loss_d = discriminator_loss(real_logits, fake_logits, self.adversarial_loss)
        logged = {"train/loss_d": loss_d}
        if self.r1_weight > 0:
            logged["train/r1"] = r1_penalty(real_logits, real_d)
            loss_d = loss_d + 0.5 * self.r1_weight * logged["train/r1"]
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()

        # Scored by the just-updated D, as PyTorch DCGAN does (Torch reused D's fake pass).
        loss_g = self.generator_loss(parts, real)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        opt_g.step()
        if self.generator_ema is not None:
            update_ema(self.generator_ema, self.generator, self.ema_decay)
        logged |= {"train/loss_g": loss_g, "train/mask_mean": parts.mask.mean()}
        self.log_dict(logged, prog_bar=True, batch_size=len(real))

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        d_factory = self.discriminator_optimizer_factory
        if d_factory is None:
            d_factory = self.optimizer_factory
        return [
            self.optimizer_factory(params=self.generator.parameters()),
            d_factory(params=self.discriminator.parameters()),
        ]

    def setup(self, stage: str) -> None:
        strategy = self.trainer.strategy
        # Private, but Lightning 2.6 has no public way to change a built strategy's DDP kwargs.
        if isinstance(strategy, DDPStrategy):  # before Lightning wraps the model
            strategy._ddp_kwargs["find_unused_parameters"] = True
