"""Detail tables of the records with more figures than one table row holds, for
docs/benchmarks.md (``python -m benchmarks.table`` writes them)."""

from __future__ import annotations

from collections.abc import Callable


def pct(fraction: float) -> str:
    return f"{100 * fraction:.0f}%"


def billiards_details(record: dict) -> str:
    """Trajectory errors on all held-out episodes beside the collision subset; planning
    success per stride on validation tables beside the test result of the chosen stride."""
    lines = [
        "| set | model | all: position error | ratio to CV | near collisions, ratio "
        "| with a collision: position error | ratio to CV | near collisions, ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for set_name, scores in record["figures"]["trajectories"].items():
        title = (
            f"{set_name} ({scores['episodes']} episodes, {scores['with_collisions']} with a "
            "collision)"
        )
        for model in scores["all_episodes"]:
            cells = []
            for subset in ("all_episodes", "collision_episodes"):
                s = scores.get(subset, {}).get(model)
                cells += (
                    [
                        f"{s['position']:.2f}",
                        f"{s['position_ratio_to_cv']:.3f}",
                        f"{s['position_near_collision_ratio_to_cv']:.3f}",
                    ]
                    if s
                    else ["-"] * 3
                )
            lines.append(f"| {title} | {model} | " + " | ".join(cells) + " |")
    plans = record["figures"]["planning"]
    strides = next(
        (list(plans[m]["validation_success_by_stride"]) for m in ("oc", "fc") if m in plans), []
    )
    lines += [
        "",
        f"| planner | validation success, stride {' / '.join(strides)} "
        f"({plans['problems']['validation']} tables) | chosen stride "
        f"| test success ({plans['problems']['test']} tables) |",
        "|---|---|---:|---:|",
    ]
    for model in ("oc", "fc"):
        if model in plans:
            p = plans[model]
            by_stride = " / ".join(pct(v) for v in p["validation_success_by_stride"].values())
            lines.append(
                f"| {model} | {by_stride} | {p['chosen_stride']} | {pct(p['test_success'])} |"
            )
    random = plans["random_force"]
    lines.append(f"| random force | {pct(random['validation'])} | - | {pct(random['test'])} |")
    return "\n".join(lines)


def vgan_details(record: dict) -> str:
    f = record["figures"]
    lines = [
        "| clips | combined | plausibility | motion | coverage | spread across clips |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for who, s in f["scores"].items():
        lines.append(
            f"| {who} | {s['combined']:.3f} | {s['plausibility']:.3f} | {s['motion']:.3f} "
            f"| {s['coverage']:.3f} | {s['spread']:.3f} |"
        )
    lines += [
        "",
        "| recipe | iterations | mask on balls | mask elsewhere |",
        "|---|---:|---:|---:|",
    ]
    for recipe, m in f["mask"].items():
        lines.append(
            f"| {recipe} | {f['iterations'][recipe]} | {m['mask_on_balls']:.3f} "
            f"| {m['mask_elsewhere']:.3f} |"
        )
    world = ", ".join(f"{key} {value}" for key, value in record["setup"]["world"].items())
    return f"World: {world}.\n\n" + "\n".join(lines)


def render_details(record: dict) -> str:
    lines = [
        "| frames | grid (H x W) | grid fps | write_mp4 fps | raw x264 fps | png fps "
        "| grid+mp4 fps | write_mp4 / raw | grid+mp4 / png |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in record["figures"].items():
        lines.append(
            f"| {name} | {r['grid_shape'][0]} x {r['grid_shape'][1]} | {r['grid_fps']} "
            f"| {r['write_mp4_fps']} | {r['raw_x264_fps']} | {r['png_fps']} "
            f"| {r['grid_plus_mp4_fps']} | {r['write_mp4_vs_raw_x264']} "
            f"| {r['grid_plus_mp4_vs_png']} |"
        )
    return "\n".join(lines)


def prednet_speed_details(record: dict) -> str:
    lines = ["| config | straightforward | ours NHWC | ours NCHW |", "|---|---|---|---|"]
    for config, f in record["figures"].items():
        rates = [f.get(f"ours_{layout}_clips_per_s") for layout in ("channels_last", "contiguous")]
        cells = " | ".join("-" if r is None else f"{r:.3f}" for r in rates)
        lines.append(f"| {config} | {f['reference_clips_per_s']:.3f} | {cells} |")
    return "Training clips/s (medians):\n\n" + "\n".join(lines)


DETAILS: dict[str, Callable[[dict], str]] = {
    "prednet_speed": prednet_speed_details,
    "render": render_details,
    "vgan": vgan_details,
    "billiards": billiards_details,
}
