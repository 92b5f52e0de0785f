"""``vidgen-compare``: several checkpoints and copy-last-frame on the same held-out windows.

vidgen-compare ckpts=[runs/prednet.ckpt,runs/extrap.ckpt] data=data/caltech out=reports/caltech
vidgen-compare ckpts=[a.ckpt] names=[ours] context=5 horizon=15 clips=200 device=cuda

vidgen-compare ckpts=[vgan.ckpt,future.ckpt] ball_scores=true fvd_weights=i3d.pt  # generators

Scores both protocols unless ``protocol=rollout`` or ``protocol=next_frame`` picks one:
``rollout`` (context in, horizon out, fed back) and ``next_frame`` (each frame from all true
frames before it, PredNet's protocol). Writes into ``out``: metrics.csv
(protocol,model,metric,step,value; MSE and MAE per pixel and summed per frame), metrics.md
(a table per protocol, named), curves_<protocol>.png, side_by_side.mp4 (rollouts) and
report.html, which shows all of them; with ``ball_scores`` or ``fvd_weights`` also
generative.md. Unconditional generators (``samples_unconditionally``) are scored on their samples by
those two only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, ListConfig
from rich.console import Console
from torchvision.utils import save_image

from vidgen.cli.command import check_output, check_trained_fits, hydra_command
from vidgen.cli.train import check_partial_dataset
from vidgen.errors import VidgenError
from vidgen.eval import BASELINES
from vidgen.eval.compare import (
    PROTOCOLS,
    Results,
    batch_loader,
    evaluate,
    pick_windows,
    protocol_heading,
    rollouts,
    summary,
    write_metrics_csv,
    write_metrics_md,
)
from vidgen.eval.fvd import I3DEmbedding
from vidgen.eval.generative import (
    ball_spec_of,
    generated_clips,
    generative_scores,
    score_columns,
    write_scores_md,
)
from vidgen.loading import load
from vidgen.viz.grid import clip_strip, comparison_panels, video_grid
from vidgen.viz.report import generative_section, plot_curves, write_report
from vidgen.viz.video import write_mp4

FILES = {
    "csv": "metrics.csv",
    "md": "metrics.md",
    "curves": "curves_{protocol}.png",
    "video": "side_by_side.mp4",
    "generative": "generative.md",
    "samples": "clips_{index}.png",  # first clips of each scored set, named by position
}


def model_names(ckpts: Sequence[str], names: Sequence[str] | None) -> list[str]:
    """``names`` as given, else each file's stem; a run's ``last.ckpt`` is named after its
    task folder (logs/<task>/<time>/checkpoints/last.ckpt). Repeats get a suffix."""
    if names is not None:
        if len(names) != len(ckpts):
            raise VidgenError(f"names has {len(names)} entries for {len(ckpts)} checkpoints.")
        chosen = [str(n) for n in names]
    else:
        chosen = []
        for ckpt in map(Path, ckpts):
            run = ckpt.parent.name == "checkpoints" and len(ckpt.parents) > 2
            chosen.append(ckpt.parents[2].name if run and ckpt.stem == "last" else ckpt.stem)
    if any("," in n or not n for n in chosen):
        raise VidgenError("model names must be non-empty and contain no commas.")
    unique = []
    for name in chosen:
        label, count = name, 2
        while label in unique:
            label, count = f"{name}_{count}", count + 1
        unique.append(label)
    return unique


def chosen_protocols(protocol: str) -> list[str]:
    if protocol == "both":
        return list(PROTOCOLS)
    if protocol not in PROTOCOLS:
        raise VidgenError(f"protocol={protocol} is not one of both, {', '.join(PROTOCOLS)}.")
    return [protocol]


def compare(cfg: DictConfig) -> dict[str, Results]:
    """Evaluate under each protocol, then write the tables, curves, video and report into
    ``cfg.out``; returns {protocol: Results}."""
    protocols = chosen_protocols(cfg.protocol)
    ckpts = list(cfg.ckpts) if isinstance(cfg.ckpts, ListConfig) else [cfg.ckpts]
    if not ckpts:
        raise VidgenError("ckpts is empty; give at least one checkpoint, e.g. ckpts=[a.ckpt].")
    names = model_names(ckpts, cfg.names)
    out = Path(cfg.out)
    check_output(out, cfg.force, folder=True)
    models = {name: load(ckpt, cfg.device) for name, ckpt in zip(names, ckpts, strict=True)}
    models.setdefault("copy_last", BASELINES["copy_last"]())
    samplers = {n: m for n, m in models.items() if getattr(m, "samples_unconditionally", False)}
    if samplers and not (cfg.ball_scores or cfg.fvd_weights):
        raise VidgenError(
            f"{', '.join(samplers)}: unconditional generators are scored on their samples only; "
            "add ball_scores=true (bouncing balls) or fvd_weights=PATH."
        )
    datamodule = hydra.utils.instantiate(cfg.data)
    context, horizon = cfg.context, cfg.horizon
    check_partial_dataset(datamodule)
    windows = datamodule.eval_windows(cfg.split, context, horizon)
    check_trained_fits(models, datamodule.frame_shape)
    spec = ball_spec_of(windows.path) if cfg.ball_scores else None
    embed = I3DEmbedding(cfg.fvd_weights, cfg.device) if cfg.fvd_weights else None
    models = {name: m for name, m in models.items() if name not in samplers}
    chosen = pick_windows(len(windows), cfg.clips)
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        torch.manual_seed(cfg.seed)
        loader = batch_loader(windows, chosen, cfg.batch_size)
        results = {}
        for protocol in protocols:
            torch.manual_seed(cfg.seed)
            results[protocol] = evaluate(
                models, loader, context, horizon, cfg.device, cfg.progress, protocol
            )
        torch.manual_seed(cfg.seed)
        batch = windows.batch(chosen[: cfg.video_clips])
        predictions = rollouts(models, batch, context, horizon, cfg.device)
        scores = None
        if spec or embed:
            torch.manual_seed(cfg.seed)
            clips = generated_clips(
                models, samplers, loader, context, horizon, cfg.device, cfg.seed
            )
            scores, scoring = generative_scores(clips, spec, embed, cfg.fvd_frames)
    finally:
        torch.use_deterministic_algorithms(deterministic)
    out.mkdir(parents=True, exist_ok=True)
    write_metrics_csv(results, out / FILES["csv"])
    write_metrics_md(results, out / FILES["md"], context, horizon)
    generative = ""
    if scores is not None:
        write_scores_md(scores, out / FILES["generative"], scoring)
        strips = {}
        for index, (name, videos) in enumerate(clips.items()):
            strips[name] = FILES["samples"].format(index=index)
            save_image(clip_strip(videos), out / strips[name])
        generative = generative_section(scores, score_columns(scores), strips)
    sections = {}
    for protocol, by_model in results.items():
        curves = FILES["curves"].format(protocol=protocol)
        plot_curves(by_model, out / curves)
        sections[protocol_heading(protocol, context, horizon)] = (summary(by_model), curves)
    panels = comparison_panels(batch["frames"], predictions, context)
    video = video_grid(panels, context, cfg.upscale)
    write_mp4(video, out / FILES["video"], cfg.fps or windows.fps)
    settings = {
        "data": datamodule.split_path(cfg.split),
        "windows": f"{len(chosen)} unique windows",
        "context": context,
        "horizon": horizon,
        "checkpoints": ", ".join(f"{n} = {c}" for n, c in zip(names, ckpts, strict=True)),
    }
    if scores is not None:
        settings["generative scores"] = f"{FILES['generative']} ({scoring or 'ball scores'})"
    write_report(out, sections, settings, FILES, generative)
    console = Console()
    for heading, (rows, _) in sections.items():
        console.print(heading, markup=False)
        for row in rows:
            console.print(
                f"{row['model']:>16}  MSE {row['mse_per_pixel']:.4e}  "
                f"MAE {row['mae_per_pixel']:.4e}  PSNR {row['psnr']:6.2f}  "
                f"SSIM {row['ssim']:.4f}  MSE/copy-last {row['mse_ratio']:.3f}"
            )
    if scores is not None:
        console.print((out / FILES["generative"]).read_text(), markup=False)
    console.print(f"report: {out / 'report.html'}")
    return results


main = hydra_command("compare", compare)

if __name__ == "__main__":
    main()
