"""Two-stream VGAN tasks (Vondrick, Pirsiavash & Torralba 2016, arXiv:1609.02612).

Trained as the released code does (see ``vidgen.tasks.adversarial``, which also holds the
optional stabilisers): Adam 2e-4 / beta1 0.5 for each network, with its own state. The
unconditional generator adds 0.1 x the mean of the mask (``nn.L1Penalty(0.1,
sizeAverage=true)``); the future generator adds 10 x the L1 between its first frame and the
input frame and, like ``main_conditional.lua``, no mask penalty by default. With
``ema_decay`` set, sampling, evaluation and rollouts use the averaged generator. The
``num_samples`` clips shown during training (with their foreground, background and mask) are
written by the ``vidgen.tasks.media.GeneratedParts`` callback (``callbacks=gan``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric

from vidgen.models.vgan import FutureGenerator, VideoDiscriminator, VideoGenerator, VideoParts
from vidgen.tasks.adversarial import AdversarialTraining
from vidgen.tasks.base import OptimizerFactory, PredictorTask, VidgenTask


def to_unit(parts: VideoParts) -> VideoParts:
    """Model range [-1, 1] -> [0, 1] for video, foreground and background; the mask is kept."""
    return VideoParts(*((x + 1) / 2 for x in parts[:3]), parts.mask)


class VGANTask(AdversarialTraining, VidgenTask):
    """Unconditional video generation from z ~ N(0, I).

    Validation and test report how the discriminator sees held-out real clips and fresh
    samples (``d_real``, ``d_fake``: mean probability of "real", over both judges when D has a
    frame judge). ``adversarial``: the stabiliser keywords of
    ``AdversarialTraining.init_adversarial``.
    """

    samples_unconditionally = True

    def __init__(
        self,
        generator: VideoGenerator,
        discriminator: VideoDiscriminator,
        optimizer: OptimizerFactory,
        mask_penalty: float = 0.1,
        num_samples: int = 8,
        **adversarial: Any,
    ) -> None:
        super().__init__()
        self.init_adversarial(generator, discriminator, **adversarial)
        self.optimizer_factory = optimizer
        self.mask_penalty, self.num_samples = mask_penalty, num_samples
        self.per_step_results: dict = {}  # none: nothing here is a per-step prediction
        # D's mean belief per stage, as sums and counts reduced over ranks: exact under DDP.
        self.discriminator_beliefs = torch.nn.ModuleDict(
            {
                f"{stage}_{who}": MeanMetric()
                for stage in ("val", "test")
                for who in ("real", "fake")
            }
        )

    def generate(self, real: Tensor, generator: nn.Module) -> VideoParts:
        return generator(generator.sample_noise(len(real)))

    def generator_penalty(self, parts: VideoParts, real: Tensor) -> Tensor:
        return self.mask_penalty * parts.mask.abs().mean()

    @torch.no_grad()
    def sample(self, num: int, seed: int | None = None) -> VideoParts:
        """``num`` samples, each part [num, T, C, H, W] in [0, 1]; ``seed`` fixes z."""
        rng = None
        if seed is not None:
            rng = torch.Generator(self.device).manual_seed(seed)
        generator = self.sampling_generator
        return to_unit(generator(generator.sample_noise(num, rng)))

    def _evaluate(self, batch: dict[str, Tensor], stage: str) -> None:
        real = self.real_videos(batch["frames"])
        fake = self.generate(real, self.sampling_generator).video
        for who, video in (("real", real), ("fake", fake)):
            belief = self.discriminator_beliefs[f"{stage}_{who}"]
            belief.update(torch.sigmoid(self.discriminator(video)).mean(), weight=len(real))
            self.log(f"{stage}/d_{who}", belief, batch_size=len(real))

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")


class VGANFutureTask(AdversarialTraining, PredictorTask):
    """Future generation from one frame; a predictor, evaluated against copy-last-frame.

    ``rollout`` continues past the generator's length by conditioning the next generation on
    the last generated frame. ``adversarial``: as VGANTask's.
    """

    def __init__(
        self,
        generator: FutureGenerator,
        discriminator: VideoDiscriminator,
        optimizer: OptimizerFactory,
        first_frame_weight: float = 10.0,
        mask_penalty: float = 0.0,
        eval_horizon: int | None = None,
        num_samples: int = 8,
        **adversarial: Any,
    ) -> None:
        horizon = generator.frames - 1 if eval_horizon is None else eval_horizon
        super().__init__(optimizer, None, eval_context=1, eval_horizon=horizon)
        self.init_adversarial(generator, discriminator, **adversarial)
        self.first_frame_weight, self.mask_penalty = first_frame_weight, mask_penalty
        self.num_samples = num_samples

    def generate(self, real: Tensor, generator: nn.Module) -> VideoParts:
        return generator(real[:, 0])

    def generator_penalty(self, parts: VideoParts, real: Tensor) -> Tensor:
        first = F.l1_loss(parts.video[:, 0], real[:, 0])
        return self.first_frame_weight * first + self.mask_penalty * parts.mask.abs().mean()

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """The sampling generator's loss on a batch (validation's ``loss``)."""
        real = self.real_videos(batch["frames"])
        return self.generator_loss(self.generate(real, self.sampling_generator), real)

    @torch.no_grad()
    def separate(self, image: Tensor) -> VideoParts:
        """image [B, C, H, W] in [0, 1] -> generated parts [B, T, C, H, W] in [0, 1]."""
        return to_unit(self.sampling_generator(image * 2 - 1))

    def rollout(self, frames: Tensor, horizon: int, actions: Tensor | None = None) -> Tensor:
        """frames [B, Tc, C, H, W] in [0, 1]; only the last one conditions the future."""
        if horizon < 1:
            raise ValueError(f"horizon must be at least 1, got {horizon}")
        image, chunks, made = frames[:, -1] * 2 - 1, [], 0
        while made < horizon:
            video = self.sampling_generator(image).video  # frame 0 re-draws the input
            chunks.append(video[:, 1:])
            made += video.shape[1] - 1
            image = video[:, -1]
        return (torch.cat(chunks, dim=1)[:, :horizon] + 1) / 2
