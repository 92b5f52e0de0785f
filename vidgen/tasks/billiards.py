"""Billiards physics predictors (Fragkiadaki et al. 2016, arXiv:1511.07404): training, per-step
trajectory evaluation, and visual imagination.

Training is teacher-forced: at every step t of a window the model sees glimpses at the balls'
true positions and the force applied at frame t, and predicts their next ``horizon``
displacements u_{t+k} = p_{t+k} - p_{t+k-1}, with the loss sum_k w_k ||u~_{t+k} - u_{t+k}||^2,
w_k = exp(-k^(1/4)) (larger for short horizons; the paper's exact weights are not public).
Visual imagination rolls a model forward on its own: each predicted next position is rendered
into a new frame (the table with the balls erased, balls redrawn) that the model then looks
at, as in the paper's Fig. 1. Frame rollouts (evaluation, rollout strips, vidgen-rollout and
vidgen-compare) imagine under the window's recorded forces (``conditioning``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from vidgen.errors import VidgenError
from vidgen.eval.billiards import TrajectoryMetrics, collision_ahead, future_displacements
from vidgen.sim.billiards import BALL_COLORS, CLOTH, WALL, paint_balls
from vidgen.tasks.base import OptimizerFactory, PredictorTask, SchedulerFactory

COLOR_TOLERANCE = 0.12  # max channel difference (of 1) for a pixel to count as a ball's colour
PLAN_STRIDE = 5  # frames the planner imagines per look (see plan_force)


def find_balls(frames: Tensor, num_balls: int, arena: float) -> tuple[Tensor, Tensor]:
    """Ball k is the centroid of the pixels of colour BALL_COLORS[k]. frames [B, T, C, H, W] in
    [0, 1] -> positions [B, T, K, 2] (NaN when absent), radii [B, K] (world units)."""
    h, w = frames.shape[-2:]
    colors = torch.as_tensor(BALL_COLORS[:num_balls], dtype=frames.dtype, device=frames.device)
    colors = colors.div(255.0)[:, :, None, None]  # [K, C, 1, 1]
    mask = ((frames[:, :, None] - colors).abs().amax(3) < COLOR_TOLERANCE).to(frames.dtype)
    count = mask.sum((-1, -2))  # [B, T, K]
    xs = torch.arange(w, device=frames.device, dtype=frames.dtype) + 0.5
    ys = torch.arange(h, device=frames.device, dtype=frames.dtype) + 0.5
    centre = torch.stack([(mask.sum(-2) * xs).sum(-1), (mask.sum(-1) * ys).sum(-1)], -1)
    positions = centre / count[..., None] * centre.new_tensor([arena / w, arena / h])
    positions = positions.masked_fill(count[..., None] == 0, float("nan"))
    radii = (count.amax(1) / torch.pi).sqrt() * (arena / w)
    return positions, radii.masked_fill(count.amax(1) == 0, 0.0)


def erase_balls(frames: Tensor) -> np.ndarray:
    """Backgrounds: frames [B, C, H, W] in [0, 1] -> uint8 [B, H, W, 3] where every pixel that
    is not a blend of cloth and wall (a ball or its rim) becomes cloth."""
    image = frames.permute(0, 2, 3, 1).mul(255.0).round().cpu().numpy()
    cloth, wall = np.array(CLOTH, np.float64), np.array(WALL, np.float64)
    along = ((image - wall) @ (cloth - wall) / np.sum((cloth - wall) ** 2)).clip(0, 1)
    off_segment = np.abs(image - (wall + along[..., None] * (cloth - wall))).max(-1) > 10
    image[off_segment] = cloth
    return image.astype(np.uint8)


def render_positions(
    backgrounds: np.ndarray, positions: Tensor, radii: Tensor, arena: float
) -> Tensor:
    """Balls at positions [B, K, 2] over backgrounds [B, H, W, 3] -> float [B, 3, H, W]."""
    pos, rad = positions.detach().cpu().numpy(), radii.detach().cpu().numpy()
    images = np.stack(
        [paint_balls(bg, p, r, arena) for bg, p, r in zip(backgrounds, pos, rad, strict=True)]
    )
    return torch.from_numpy(images).to(positions.device).permute(0, 3, 1, 2).float().div(255.0)


@torch.no_grad()
def imagine(
    net: nn.Module,
    frames: Tensor,
    positions: Tensor,
    radii: Tensor,
    backgrounds: np.ndarray,
    horizon: int,
    forces: Tensor | None = None,
    stride: int = 1,
) -> tuple[Tensor, Tensor]:
    """Roll ``net`` forward on its own imagined frames.

    frames [B, Tc, C, H, W] and positions [B, Tc, K, 2] of the context; radii [B, K];
    backgrounds uint8 [B, H, W, 3]; forces [B, Tc + horizon, K, 2], the force applied at each
    context and future frame (default none) -> imagined positions [B, horizon, K, 2] and
    frames [B, horizon, C, H, W]. Each look commits the first ``stride`` predicted
    displacements (1: the paper's frame-by-frame imagination; up to the model's horizon: fewer
    looks, no compounding within a stride), renders those frames and shows them, with their
    positions and forces, to the model before the next look: as in training, the step of
    frame t sees the force at frame t and predicts the positions from t + 1 on.
    """
    b, tc, k = positions.shape[:3]
    stride = max(1, min(stride, net.horizon))
    if forces is None:
        forces = positions.new_zeros(b, tc + horizon, k, 2)
    displacements, state = net(frames, positions, forces[:, :tc])
    last, window, track = positions[:, -1], frames, positions
    imagined_positions, imagined_frames = [], []
    done = 0
    while True:
        n = min(stride, horizon - done)
        steps = last[:, None] + displacements[:, -1, :, :n].cumsum(2).transpose(1, 2)
        rendered = [render_positions(backgrounds, steps[:, i], radii, net.arena) for i in range(n)]
        imagined_positions.append(steps)  # [B, n, K, 2]
        imagined_frames.append(torch.stack(rendered, 1))
        done, last = done + n, steps[:, -1]
        if done == horizon:
            break
        window = torch.cat([window, imagined_frames[-1]], 1)[:, -(n + net.history - 1) :]
        track = torch.cat([track, steps], 1)[:, -window.shape[1] :]  # the window's positions
        force = forces[:, tc + done - n : tc + done]
        displacements, state = net(window, track, force, state)
    return torch.cat(imagined_positions, 1), torch.cat(imagined_frames, 1)


@dataclass
class Plan:
    """The planner's answer: the chosen force [2], its imagined path [horizon, 2], and every
    candidate force [N, 2] with its imagined final position [N, 2]."""

    force: Tensor
    path: Tensor
    candidates: Tensor
    finals: Tensor


@torch.no_grad()
def plan_force(
    net: nn.Module,
    frame: Tensor,
    target: Tensor,
    num_balls: int,
    ball: int = 0,
    horizon: int = 20,
    impulse: tuple[float, float] = (3e4, 8e4),
    candidates: int = 64,
    iterations: int = 3,
    elite: int = 8,
    seed: int = 0,
    stride: int = PLAN_STRIDE,
) -> Plan:
    """The force on ``ball`` whose imagined position ``horizon`` frames later is closest to
    ``target`` (world units), by the cross-entropy method over direction and magnitude.

    ``frame`` [C, H, W] shows the balls at rest. The first population is a grid (directions x
    4 magnitudes over ``impulse``); each later one is drawn around the ``elite`` best so far.
    Imagination looks every ``stride`` frames (at most the model's horizon). Committing the
    whole horizon from the still first frame leaves the model blind to the motion it set off,
    while looking every frame compounds the model's own errors; benchmarks/billiards.py
    chooses the stride on validation tables.
    """
    positions, radii = find_balls(frame[None, None], num_balls, net.arena)
    if not positions[0, 0, ball].isfinite().all():
        raise ValueError(f"ball {ball} is not in the frame")
    background = erase_balls(frame[None])
    generator = torch.Generator().manual_seed(seed)
    angles = torch.arange(candidates // 4) * (2 * math.pi / (candidates // 4))
    magnitudes = torch.linspace(*impulse, 4)
    params = torch.cartesian_prod(angles, magnitudes)  # [N, 2]: (angle, magnitude)
    tried, finals, paths = [], [], []
    for iteration in range(iterations):
        if iteration:
            best = torch.cat(tried)[torch.cat(finals).sub(target).norm(dim=-1).argsort()[:elite]]
            mean_direction = torch.stack([best[:, 0].cos(), best[:, 0].sin()]).mean(1)
            centre = torch.stack(
                [torch.atan2(mean_direction[1], mean_direction[0]), best[:, 1].mean()]
            )
            offset = (best[:, 0] - centre[0] + math.pi) % (2 * math.pi) - math.pi
            spread = torch.stack([offset.std(), best[:, 1].std()]).clamp_min(1e-3)
            params = centre + spread * torch.randn(candidates, 2, generator=generator)
            params[:, 1] = params[:, 1].clamp(*impulse)
        n = len(params)
        forces = positions.new_zeros(n, horizon + 1, num_balls, 2)
        forces[:, 0, ball] = _force_vectors(params)
        path, _ = imagine(
            net,
            frame[None, None].expand(n, -1, -1, -1, -1),
            positions.expand(n, -1, -1, -1),
            radii.expand(n, -1),
            np.repeat(background, n, axis=0),
            horizon,
            forces,
            stride,
        )
        tried.append(params)
        finals.append(path[:, -1, ball])
        paths.append(path[:, :, ball])
    params, finals_all, paths_all = torch.cat(tried), torch.cat(finals), torch.cat(paths)
    choice = finals_all.sub(target).norm(dim=-1).argmin()
    vectors = _force_vectors(params)
    return Plan(vectors[choice], paths_all[choice], vectors, finals_all)


def _force_vectors(params: Tensor) -> Tensor:
    """(angle, magnitude) rows [N, 2] -> force vectors [N, 2]."""
    return params[:, 1:] * torch.stack([params[:, 0].cos(), params[:, 0].sin()], -1)


class BilliardsTask(PredictorTask):
    """Wraps an object- or frame-centric predictor; batches carry the simulator's tracks."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        max_balls: int = 3,
        eval_context: int = 4,
        eval_horizon: int = 20,
    ) -> None:
        super().__init__(optimizer, scheduler, eval_context, eval_horizon, next_frame_eval=False)
        self.net, self.max_balls = net, max_balls
        steps = torch.arange(1, net.horizon + 1, dtype=torch.float32)
        self.register_buffer("horizon_weights", torch.exp(-(steps**0.25)), persistent=False)
        # (H, W) of the training frames, kept in checkpoints: the glimpse scale depends on it.
        self.register_buffer("frame_size", torch.zeros(2, dtype=torch.long))
        self.trajectory = nn.ModuleDict(
            {
                f"{stage}_{who}": TrajectoryMetrics(net.horizon)
                for stage in ("val", "test")
                for who in ("model", "constant_velocity")
            }
        )

    def check_frame_shape(self, shape: tuple[int, int, int]) -> None:
        self.frame_size.copy_(torch.tensor(shape[1:]))

    def predict_tracks(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Teacher-forced predictions, targets [B, T, K, horizon, 2] and a mask [B, T, K] of
        the steps whose glimpse history is real (a window's first steps repeat its first frame,
        true only when the episode starts there, at rest before the force)."""
        frames, positions = batch["frames"], batch["objects/positions"]
        forces = batch["objects/forces"]
        predicted, _ = self.net(frames, positions, forces)
        target = future_displacements(positions, self.net.horizon)
        real_history = torch.ones(positions.shape[:3], dtype=torch.bool, device=frames.device)
        at_start = forces[:, 0].abs().flatten(1).amax(-1) > 0  # [B]
        real_history[:, : self.net.history - 1] = at_start[:, None, None]
        return predicted, target, real_history

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        predicted, target, real_history = self.predict_tracks(batch)
        valid = target.isfinite().all(-1) & real_history[..., None]  # [B, T, K, horizon]
        scale = self.net.displacement_scale
        error = ((predicted - target.nan_to_num(0.0)) / scale).pow(2).sum(-1)
        weights = self.horizon_weights * valid
        total = weights.sum()
        if self.training and dist.is_available() and dist.is_initialized():
            # DDP averages the ranks' gradients; dividing by the ranks' mean weight (the same
            # on every rank) makes that average the one-process loss, however the valid steps
            # fall across ranks. Training steps are collective anyway, evaluation's are not.
            dist.all_reduce(total := total.clone())
            total = total / dist.get_world_size()
        return (error * weights).sum() / total.clamp_min(1e-8)

    def _evaluate(self, batch: dict[str, Tensor], stage: str) -> None:
        super()._evaluate(batch, stage)  # frames through rollout() against copy-last-frame
        predicted, target, real_history = self.predict_tracks(batch)
        positions = batch["objects/positions"]
        last = torch.cat([positions[:, :1], positions[:, :-1]], dim=1)
        constant = (positions - last)[:, :, :, None].expand_as(target)
        # Score steps with a real history and a real velocity for the baseline (t >= 1).
        rows = real_history.clone()
        rows[:, 0] = False
        near = collision_ahead(batch["objects/collisions"], self.net.horizon)
        for who, guess in (("model", predicted), ("constant_velocity", constant)):
            self.trajectory[f"{stage}_{who}"].update(guess[rows], target[rows], near[rows])

    def _log_metrics(self, stage: str) -> None:
        super()._log_metrics(stage)
        values = {}
        for who in ("model", "constant_velocity"):
            metric = self.trajectory[f"{stage}_{who}"]
            prefix = f"{stage}/" if who == "model" else f"{stage}/cv_"
            for name, per_step in metric.compute().items():
                values[f"{prefix}{name}_error"] = per_step.mean()
                self.per_step_results[stage].setdefault(who, {})[name] = per_step.tolist()
            metric.reset()
        values[f"{stage}/position_error_ratio"] = (
            values[f"{stage}/position_error"] / values[f"{stage}/cv_position_error"]
        )
        self.log_dict({k: v.float() for k, v in values.items()})

    def conditioning(self, batch: dict[str, Tensor], length: int) -> dict[str, Tensor]:
        """The force applied to each ball at each of the window's first ``length`` frames."""
        if "objects/forces" not in batch:
            raise VidgenError(
                "this model predicts from the applied forces, and the batches have no "
                "objects/forces; use data rendered by vidgen-prep synthetic --world billiards."
            )
        return {"forces": batch["objects/forces"][:, :length]}

    def rollout(self, frames: Tensor, horizon: int, forces: Tensor | None = None) -> Tensor:
        """Balls found by colour in the context, then imagined ``horizon`` frames ahead.

        frames [B, Tc, C, H, W]; forces [B, >= Tc, K, 2] applied to ball k (the ball of
        colour k) at each context and future frame, none at frames past the given ones
        (default: none at all) -> [B, horizon, C, H, W].
        """
        if horizon < 1:
            raise ValueError(f"horizon must be at least 1, got {horizon}")
        b, context = frames.shape[:2]
        full = frames.new_zeros(b, context + horizon, self.max_balls, 2)
        if forces is not None:
            if forces.shape[1] < context or forces.shape[2] > self.max_balls:
                raise VidgenError(
                    f"forces of shape {tuple(forces.shape)} do not fit {context} context frames "
                    f"and this model's {self.max_balls} balls; pass [B, >= {context}, "
                    f"<= {self.max_balls}, 2], one force per ball and frame."
                )
            given = forces[:, : context + horizon]
            full[:, : given.shape[1], : given.shape[2]] = given.to(frames.dtype)
        positions, radii = find_balls(frames, self.max_balls, self.net.arena)
        backgrounds = erase_balls(frames[:, -1])
        return imagine(self.net, frames, positions, radii, backgrounds, horizon, full)[1]
