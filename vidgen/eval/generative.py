"""Scores of whole generated clips for ``vidgen-compare``: ball scores and FVD.

Predictors are judged on their clips (the true context followed by their prediction),
unconditional generators on fresh samples, both against the held-out windows themselves;
the real clips get a row of their own as the reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from vidgen.data.dataset import to_model_batch
from vidgen.data.store import summarize
from vidgen.errors import VidgenError
from vidgen.eval.ball_scores import BallSpec, population_scores
from vidgen.eval.compare import rollouts
from vidgen.eval.fvd import FVDProtocol, I3DEmbedding, clip_statistics, fvd

# {clips' name ("real" or a model): {score: value}}
Scores = dict[str, dict[str, float]]


# generative.md's columns, headline first; FVD last.
COLUMNS = (
    "combined",
    "plausibility",
    "motion",
    "coverage",
    "spread",
    "right_count",
    "smooth_steps",
)


def ball_spec_of(path: Path) -> BallSpec:
    """The ball scores' spec for a bouncing-balls file, from the world config it records."""
    world = summarize(path)["world"]
    if world is None or world["name"] != "bouncing_balls":
        name = "no synthetic" if world is None else world["name"]
        raise VidgenError(
            f"ball scores judge bouncing-balls videos; {path} holds {name} world. "
            "Leave ball_scores=false for other data."
        )
    return BallSpec.from_world(world["config"])


@torch.no_grad()
def generated_clips(
    predictors: Mapping[str, nn.Module],
    samplers: Mapping[str, nn.Module],
    loader: DataLoader,
    context: int,
    horizon: int,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """[N, T, C, H, W] clips in [0, 1]: ``real`` windows, each predictor's context plus
    rollout on them, and as many samples of each unconditional generator."""
    real, predicted = [], {name: [] for name in predictors}
    for raw in loader:
        batch = to_model_batch(raw)
        frames = batch["frames"][:, : context + horizon]
        real.append(frames)
        for name, future in rollouts(predictors, batch, context, horizon, device).items():
            predicted[name].append(torch.cat([frames[:, :context], future.cpu()], dim=1))
    clips = {"real": torch.cat(real)}
    clips.update({name: torch.cat(parts) for name, parts in predicted.items()})
    for name, model in samplers.items():
        clips[name] = model.sample(len(clips["real"]), seed=seed).video.cpu()
    return clips


def generative_scores(
    clips: Mapping[str, torch.Tensor],
    spec: BallSpec | None = None,
    embed: I3DEmbedding | None = None,
    fvd_frames: int = 16,
) -> tuple[Scores, str | None]:
    """Ball scores (with ``spec``) of every entry and FVD (with ``embed``) of every entry
    but ``real`` against ``real``; returns the scores and the FVD protocol used."""
    scores: Scores = {name: {} for name in clips}
    if spec is not None:
        for name, values in population_scores(clips, spec).items():
            scores[name].update(values)
    protocol = None
    if embed is not None:
        frames = min(fvd_frames, *(videos.shape[1] for videos in clips.values()))
        protocol = FVDProtocol(clips=len(clips["real"]), frames=frames)
        reference = clip_statistics(clips["real"], embed, protocol, "real")
        for name, videos in clips.items():
            if name != "real":
                scores[name]["fvd"] = fvd(reference, videos, embed, protocol)["fvd"]
    return scores, None if protocol is None else protocol.describe()


def score_columns(scores: Scores) -> list[str]:
    """The columns present in ``scores``, headline first."""
    present = {key for values in scores.values() for key in values}
    return [c for c in (*COLUMNS, "fvd") if c in present]


def write_scores_md(scores: Scores, path: Path, protocol: str | None) -> Path:
    """One row per clip set, one column per score."""
    columns = score_columns(scores)
    lines = ["| clips | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, values in scores.items():
        cells = [f"{values[c]:.4g}" if c in values else "" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if protocol:
        lines.append(f"\nFVD protocol: {protocol}")
    path.write_text("\n".join(lines) + "\n")
    return path
