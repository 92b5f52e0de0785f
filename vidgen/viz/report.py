"""The comparison report: metric curves per future step and one self-contained HTML page
that shows the table, the curves and the side-by-side video (files beside it, linked
relatively, so the folder can be copied or served as is)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

import torch
from matplotlib.figure import Figure

from vidgen.eval.compare import CONVENTIONS, SUMMARY_COLUMNS
from vidgen.eval.metrics import METRIC_NAMES

LABELS = {
    "mse": "MSE per pixel (lower is better)",
    "mae": "MAE per pixel (lower is better)",
    "psnr": "PSNR, dB",
    "ssim": "SSIM",
}


def plot_curves(
    results: Mapping[str, Mapping[str, torch.Tensor]], path: Path | None = None
) -> Figure:
    """One panel per metric: value against future step, one line per model; saved to
    ``path`` when given. A bare Figure (no pyplot), so notebooks keep their own backend."""
    fig = Figure(figsize=(4.2 * len(METRIC_NAMES), 3.4))
    axes = fig.subplots(1, len(METRIC_NAMES))
    for ax, name in zip(axes, METRIC_NAMES, strict=True):
        for model, by_metric in results.items():
            values = by_metric[name].tolist()
            style = "--" if model == "copy_last" else "-"
            ax.plot(range(1, len(values) + 1), values, style, marker="o", ms=3, label=model)
        ax.set(xlabel="future step", title=LABELS[name])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def summary_table(rows: list[dict[str, float | str]]) -> str:
    """The HTML table of ``summary`` rows (vidgen.eval.compare)."""
    headings = [heading.format(baseline="copy_last") for _, heading, _ in SUMMARY_COLUMNS]
    header = "<tr><th>model</th>" + "".join(f"<th>{h}</th>" for h in headings) + "</tr>"
    body = "".join(
        f"<tr><td>{html.escape(str(r['model']))}</td>"
        + "".join(f"<td>{format(r[key], spec)}</td>" for key, _, spec in SUMMARY_COLUMNS)
        + "</tr>"
        for r in rows
    )
    return f"<table><thead>{header}</thead><tbody>{body}</tbody></table>"


def scores_table(scores: Mapping[str, Mapping[str, float]], columns: list[str]) -> str:
    """The HTML table of generative scores: one row per clip set."""
    header = "<tr><th>clips</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(f"<td>{values[c]:.4g}</td>" if c in values else "<td></td>" for c in columns)
        + "</tr>"
        for name, values in scores.items()
    )
    return f"<table><thead>{header}</tr></thead><tbody>{body}</tbody></table>"


def generative_section(
    scores: Mapping[str, Mapping[str, float]], columns: list[str], strips: Mapping[str, str]
) -> str:
    """Scores of whole clips and, per clip set, an image of its first clips."""
    images = "".join(
        f"<h3>{html.escape(name)}</h3>\n"
        f'<img src="{image}" alt="first clips of {html.escape(name)}">\n'
        for name, image in strips.items()
    )
    return (
        "<h2>Generated clips</h2>\n<p>Whole clips (true context, then the prediction; samples "
        "for generators) against the held-out ones. Ball scores: plausibility (right balls, "
        "smooth steps), motion (ball speeds in the world's range), coverage (of the real "
        "clips' positions and velocities), combined (their geometric mean).</p>\n"
        f"{scores_table(scores, columns)}\n{images}"
    )


def write_report(
    out: Path,
    sections: Mapping[str, tuple[list[dict[str, float | str]], str]],
    settings: Mapping[str, object],
    files: Mapping[str, str],
    generative: str = "",
) -> Path:
    """``report.html`` in ``out``: per protocol heading, its ``summary`` rows and the name
    of its curves image; ``files`` names the video, csv and md in ``out``; ``generative``
    is the HTML of ``generative_section`` when whole clips were scored."""
    tables = "".join(
        f"<h2>{html.escape(heading)}</h2>\n<p>Mean over the predicted frames.</p>\n"
        f"{summary_table(rows)}\n<h3>Per future step</h3>\n"
        f'<img src="{curves}" alt="metrics per future step, {html.escape(heading)}">\n'
        for heading, (rows, curves) in sections.items()
    )
    setting_items = "".join(
        f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in settings.items()
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vidgen comparison</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ padding: .3rem .8rem; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }} tr:nth-child(even) {{ background: #f3f3f3; }}
th {{ border-bottom: 2px solid #444; }} img, video {{ max-width: 100%; }}
</style></head><body>
<h1>vidgen comparison</h1>
<ul>{setting_items}</ul>
{tables}<p>{CONVENTIONS}</p>
<p><a href="{files["csv"]}">{files["csv"]}</a> (per step) &middot;
<a href="{files["md"]}">{files["md"]}</a></p>
<h2>Side by side</h2>
<p>Ground truth, then every model's rollout, on the same clips; a red border marks predicted
frames.</p>
<video src="{files["video"]}" controls autoplay muted loop playsinline></video>
{generative}</body></html>
"""
    path = out / "report.html"
    path.write_text(page)
    return path
