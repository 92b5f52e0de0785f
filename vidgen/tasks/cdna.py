"""Training the action-conditioned CDNA / DNA / STP predictor (Finn et al. 2016, arXiv:1605.07157).

As ``prediction_train.py``: 2 context frames, scheduled sampling with k = 900 driven by the
optimizer's global step (a fresh random subset per time step, no detach), the L2 loss per
pixel over the predicted frames plus 1e-4 x the state MSE, both averaged over the
T - context scored steps. Unlike the released code, validation and test roll out with no
ground truth (k = -1). Testing also rolls the same clips out with the actions of another
clip in the batch, which shows how much the model uses its actions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.distributed as dist

from vidgen.errors import VidgenError
from vidgen.eval import METRIC_NAMES, PerStepMetrics
from vidgen.models.action_conditioned import ActionConditionedConvLSTM
from vidgen.tasks.base import OptimizerFactory, PredictorTask, SchedulerFactory


def num_ground_truth(step: int, batch: int, k: float, rank: int = 0, world_size: int = 1) -> int:
    """Batch items fed the true frame: round(B k / (k + exp(step / k))) of the global batch B;
    with k = -1 none (the released code's "feed self": every step after the context sees its
    own prediction). Under DDP, rank r holds global items r, r + W, ... (the EpochSampler's
    split), so it takes those of the global count that fall on it and all ranks together
    feed exactly what one process would."""
    if k < 0:
        return 0
    total = round(batch * world_size * k / (k + math.exp(min(step / k, 700.0))))
    return len(range(rank, total, world_size))


class ActionConditionedTask(PredictorTask):
    """``net`` is a partial ``ActionConditionedConvLSTM``: the task picks its ``head`` (so
    ``model.head=dna`` switches it) and checks batches against its action and state sizes."""

    def __init__(
        self,
        net: Callable[..., ActionConditionedConvLSTM],
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        head: str = "cdna",
        context_frames: int = 2,
        schedsamp_k: float = 900.0,
        state_loss_weight: float = 1e-4,
        eval_context: int = 2,
        eval_horizon: int = 8,
        compile: bool = False,
    ) -> None:
        super().__init__(
            optimizer, scheduler, eval_context, eval_horizon, next_frame_eval=False, compile=compile
        )
        self.net = net(head=head)
        self.context_frames, self.schedsamp_k = context_frames, schedsamp_k
        self.state_loss_weight = state_loss_weight
        self.metrics["test_shuffled_actions"] = PerStepMetrics(eval_horizon)

    def check_frame_shape(self, shape: tuple[int, int, int]) -> None:
        channels, height, width = shape
        if (height, width) != self.net.image_size or channels != 3:
            raise VidgenError(
                f"frames of {channels}x{height}x{width} do not fit this network, built for "
                f"3x{self.net.image_size[0]}x{self.net.image_size[1]}; "
                f"set model.net.image_size=[{height},{width}]."
            )

    def _conditioning(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The batch's actions and states (None when the net takes none), checked."""
        sizes = {"actions": self.net.action_dim, "states": self.net.state_dim}
        for key, size in sizes.items():
            if size == 0:
                continue
            if key not in batch:
                raise VidgenError(f"this model needs {key} in the data, and the batches have none.")
            if batch[key].shape[-1] != size:
                raise VidgenError(
                    f"the data has {batch[key].shape[-1]}-d {key} but the model expects {size}; "
                    f"set model.net.{key[:-1]}_dim={batch[key].shape[-1]}."
                )
        return batch["actions"], batch["states"] if self.net.state_dim else None

    def conditioning(self, batch: dict[str, torch.Tensor], length: int) -> dict[str, torch.Tensor]:
        actions, states = self._conditioning(batch)
        inputs = {"actions": actions[:, :length]}
        if states is not None:
            inputs["states"] = states[:, :1]  # the state of the first context frame
        return inputs

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        frames = batch["frames"]  # B T C H W
        actions, states = self._conditioning(batch)
        batch_size, length = frames.shape[:2]
        context = self.context_frames
        if length <= context:
            raise VidgenError(
                f"windows of {length} frames leave nothing to predict after {context} context "
                f"frames; set data.length={context + 8}."
            )
        k = self.schedsamp_k if self.training else -1  # evaluation: pure rollouts
        distributed = dist.is_available() and dist.is_initialized()
        ranks = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
        num_true = num_ground_truth(self.global_step, batch_size, k, *ranks)
        # T - 1 steps; step t predicts frame t + 1. Score frames context.. T - 1.
        first_state = None if states is None else states[:, 0]
        images, predicted_states = self.net(
            frames, actions, first_state, length - 1, context, num_true
        )
        loss = (images[:, context - 1 :] - frames[:, context:]).pow(2).mean()
        if self.training:
            self.log("train/ground_truth_fraction", num_true / batch_size)
        if states is not None:
            state_loss = (predicted_states[:, context - 1 :] - states[:, context:]).pow(2).mean()
            if self.training:
                self.log("train/state_loss", state_loss)
            loss = loss + self.state_loss_weight * state_loss
        return loss

    def rollout(
        self,
        frames: torch.Tensor,
        horizon: int,
        actions: torch.Tensor | None = None,
        states: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """frames [B, Tc, C, H, W], actions [B, Tc + horizon, A] and, when the net takes
        states, the context's true states [B, >= 1, S] (the first is used) -> [B, horizon, C,
        H, W]."""
        if horizon < 1:
            raise ValueError(f"horizon must be at least 1, got {horizon}")
        context = frames.shape[1]
        if actions is None:
            raise VidgenError("this model predicts from actions, and none were given.")
        if self.net.state_dim and states is None:
            raise VidgenError(
                "this model was trained with states; pass the context's states "
                "(or train it with model.net.state_dim=0)."
            )
        if actions.shape[1] < context - 1 + horizon:
            raise VidgenError(
                f"{actions.shape[1]} actions are too few for {context} context frames and "
                f"{horizon} predicted frames; need {context - 1 + horizon}."
            )
        first_state = None if states is None or not self.net.state_dim else states[:, 0]
        images, _ = self.net(frames, actions, first_state, context - 1 + horizon, context)
        return images[:, context - 1 :]

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        super().test_step(batch, batch_idx)
        # The same clips with every clip's actions given to its neighbour in the batch (a
        # cyclic shift: no clip keeps its own; a batch of one cannot be shuffled).
        frames = batch["frames"][:, : self.eval_context + self.eval_horizon]
        inputs = self.conditioning(batch, frames.shape[1])
        inputs["actions"] = inputs["actions"].roll(1, dims=0)
        pred = self.rollout(frames[:, : self.eval_context], self.eval_horizon, **inputs)
        self.metrics["test_shuffled_actions"].update(pred, frames[:, self.eval_context :])

    def on_test_epoch_end(self) -> None:
        shuffled = self.metrics["test_shuffled_actions"]
        per_step = shuffled.compute()
        self.log_dict(
            {
                f"test/shuffled_actions_{name}": per_step[name].mean().float()
                for name in METRIC_NAMES
            }
        )
        super().on_test_epoch_end()
        self.per_step_results["test"]["shuffled_actions"] = {
            name: values.tolist() for name, values in per_step.items()
        }
