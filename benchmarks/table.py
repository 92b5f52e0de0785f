"""README's benchmark table and the figures in docs/, generated from the committed records.

Each generated block sits between ``<!-- benchmarks:NAME start -->`` and
``<!-- benchmarks:NAME end -->`` in a Markdown file and is rebuilt from
``benchmarks/results/*.json`` (written by ``benchmarks.record.Run``); every figure carries
the date, commit and device of its record, and a benchmark without a record reads "not yet
measured". Nothing between the markers is typed by hand.

    python -m benchmarks.table           # rewrite the blocks
    python -m benchmarks.table --check   # exit 1 when README or docs differ from the records
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks.details import DETAILS, pct
from benchmarks.record import RESULTS, ROOT

REPO = ROOT.parent
FILES = ("README.md", "docs/cdna.md", "docs/benchmarks.md")
MISSING = "not yet measured"
LAYOUT_NAMES = {"channels_last": "NHWC", "contiguous": "NCHW"}  # PredNet's activation layouts
SUBSETS = ("all_episodes", "collision_episodes")  # of the billiards held-out episodes
# Record name -> the default command that writes it.
COMMANDS = {
    "loader": "python -m benchmarks.loader",
    "prednet_quality": "python -m benchmarks.prednet quality",
    "prednet_speed": "python -m benchmarks.prednet speed",
    "overhead": "python -m benchmarks.overhead",
    "render": "python -m benchmarks.render",
    "cdna": "python -m benchmarks.cdna",
    "vgan": "python -m benchmarks.vgan",
    "billiards": "python -m benchmarks.billiards",
    "own_video": "python -m benchmarks.own_video",
}


def load_records(results: Path = RESULTS) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(results.glob("*.json"))}


def provenance(record: dict) -> str:
    """Where a figure comes from: date, commit, device, threads and wall time."""
    dirty = " (uncommitted changes)" if record["dirty"] else ""
    return (
        f"{record['date'][:10]}, `{record['commit'][:7]}`{dirty}, {record['device']}, "
        f"{record['threads']} thread(s), {record['wall_seconds'] / 60:.0f} min"
    )


def loader_summary(record: dict) -> str:
    parts = []
    for name, r in record["figures"].items():
        parts.append(
            f"{name}: {r['auto_ratio']:.2f}x a raw h5py read with `auto` "
            f"({r['auto_workers']} workers), {r['workers_ratio']:.2f}x with "
            f"{record['setup']['workers']} workers"
        )
    return "random T=10 windows: " + "; ".join(parts)


def prednet_quality_summary(record: dict) -> str:
    f = record["figures"]
    return (
        f"demo ({record['setup']['max_epochs']} epochs): next-frame MSE {f['mse_ratio']:.3f}x "
        f"copy-last (PSNR {f['psnr']:.1f} vs {f['copy_last_psnr']:.1f} dB) on "
        f"{f['test_windows']} test windows"
    )


def prednet_speed_summary(record: dict) -> str:
    parts = [
        f"{config} config ({'x'.join(map(str, f['frame_size']))}) training: "
        + " / ".join(
            f"{f[f'speedup_{layout}']:.2f}x ({LAYOUT_NAMES[layout]})"
            for layout in LAYOUT_NAMES
            if f"speedup_{layout}" in f
        )
        for config, f in record["figures"].items()
    ]
    paper = record["figures"].get("paper")
    projection = (
        f"; 18,750 paper updates would take {paper['paper_run_minutes']:.0f} min" if paper else ""
    )
    return "; ".join(parts) + " the straightforward implementation" + projection


def overhead_summary(record: dict) -> str:
    return "vidgen-train's training step rate vs the bare model on the same batches: " + ", ".join(
        f"{case} {f['ratio']:.2f}x ({f['train_steps_per_s']:.2f} vs {f['bare_steps_per_s']:.2f} "
        "steps/s)"
        for case, f in record["figures"].items()
    )


def render_summary(record: dict) -> str:
    return "; ".join(
        f"{name}: `write_mp4` {r['write_mp4_vs_raw_x264']:.2f}x bare PyAV, grid + mp4 "
        f"{r['grid_plus_mp4_vs_png']:.2f}x PNG files"
        for name, r in record["figures"].items()
    )


def cdna_summary(record: dict) -> str:
    heads = record["figures"]["heads"]
    gains = ", ".join(f"{h['head'].upper()} {h['gain_over_copy_last_db']:+.1f} dB" for h in heads)
    drops = " / ".join(f"{h['shuffle_drop_db']:.1f}" for h in heads)
    return (
        f"32x32 pusher, equal updates ({heads[0]['updates']} per head), "
        f"{heads[0]['test_windows']} test windows: PSNR over copy-last {gains}; shuffled "
        f"actions cost {drops} dB"
    )


def vgan_summary(record: dict) -> str:
    f, world = record["figures"], record["setup"]["world"]
    scores, recipes = f["scores"], list(f["iterations"])
    combined = ", ".join(f"{who} {s['combined']:.2f}" for who, s in scores.items())
    budget = ", ".join(f"{r} {f['iterations'][r]} it" for r in recipes)
    fractions = "; ".join(
        f"{recipe}: plausibility {r['plausibility']:.2f}, motion {r['motion']:.2f}, "
        f"coverage {r['coverage']:.2f}"
        for recipe, r in f["fraction_of_real"].items()
    )
    masks = "; ".join(
        f"{recipe} {m['mask_on_balls']:.2f} on balls vs {m['mask_elsewhere']:.2f}"
        for recipe, m in f["mask"].items()
    )
    return (
        f"{world['num_balls']}-ball world, {world['clip_frames']} frames at "
        f"{world['frame_size']}x{world['frame_size']}, {record['setup']['minutes']:g} min per "
        f"recipe ({budget}): combined "
        f"score {combined}; fraction of real, {fractions}; mask {masks}"
    )


def billiards_summary(record: dict) -> str:
    sets, plans = record["figures"]["trajectories"], record["figures"]["planning"]
    larger = sets["larger_tables"]

    def ratios(model: str) -> str:
        values = [larger[s][model]["position_ratio_to_cv"] for s in SUBSETS if s in larger]
        return " / ".join(f"{v:.2f}x" for v in values)

    models = [m for m in ("oc", "fc") if m in plans]
    planning = ", ".join(
        f"{m.upper()} {pct(plans[m]['test_success'])} (stride {plans[m]['chosen_stride']})"
        for m in models
    )
    trained = record["figures"]["train_seconds"]
    budget = (
        f"{'/'.join(m.upper() for m in trained)} trained {record['setup']['minutes']:g} min each; "
        if trained
        else "saved checkpoints; "
    )
    return (
        budget + f"held-out larger tables, all {larger['episodes']} episodes / the "
        f"{larger['with_collisions']} with a collision: position error "
        + ", ".join(f"{m.upper()} {ratios(m)}" for m in models)
        + f" constant velocity; planning on {plans['problems']['test']} test tables (stride "
        f"chosen on {plans['problems']['validation']} validation tables): {planning}, random "
        f"force {pct(plans['random_force']['test'])}"
    )


def own_video_summary(record: dict) -> str:
    setup, runs = record["setup"], ("before", "default", "extrap")

    def ratios(protocol: str) -> str:
        rows = record["figures"][protocol]
        return ", ".join(f"{run} {rows[run]['mse_ratio']:.2f}x" for run in runs if run in rows)

    return (
        f"{Path(setup['video']).name} at {setup['size']}, {setup['minutes']:g} min per t+1 run, "
        f"{setup['extrap_minutes']:g} min fine-tuning; test MSE vs copy-last, next frame: "
        f"{ratios('next_frame')}; 10-frame rollout: {ratios('rollout')}"
    )


SUMMARIES: dict[str, Callable[[dict], str]] = {
    "loader": loader_summary,
    "prednet_quality": prednet_quality_summary,
    "prednet_speed": prednet_speed_summary,
    "overhead": overhead_summary,
    "render": render_summary,
    "cdna": cdna_summary,
    "vgan": vgan_summary,
    "billiards": billiards_summary,
    "own_video": own_video_summary,
}


def summary_table(records: dict[str, dict]) -> str:
    lines = ["| record | command | result | measured |", "|---|---|---|---|"]
    for name, summarize in SUMMARIES.items():
        record = records.get(name)
        command = record["command"] if record else COMMANDS[name]
        result, measured = (summarize(record), provenance(record)) if record else (MISSING, "")
        lines.append(f"| {name} | `{command}` | {result} | {measured} |")
    return "\n".join(lines)


def demo_block(records: dict[str, dict]) -> str:
    record = records.get("prednet_quality")
    if record is None:
        return f"The demo's result: {MISSING} (`{COMMANDS['prednet_quality']}` records it)."
    f = record["figures"]
    lines = [
        f"test {m:>4}: model {f[m]:.5g}   copy-last {f['copy_last_' + m]:.5g}"
        for m in ("mse", "mae", "psnr", "ssim")
        if m in f and f"copy_last_{m}" in f
    ]
    lines.append(f"test MSE ratio to copy-last: {f['mse_ratio']:.3f}")
    return (
        f"The demo's result on {f['test_windows']} test windows, as recorded by "
        f"`{record['command']}` ({provenance(record)}; the {record['setup']['max_epochs']} "
        f"epochs plus the test took {f['train_and_test_seconds'] / 60:.0f} min):\n\n```\n"
        + "\n".join(lines)
        + "\n```"
    )


def loader_block(records: dict[str, dict]) -> str:
    record = records.get("loader")
    if record is None:
        return f"(`{COMMANDS['loader']}` measures both; {MISSING}.)"
    return f"(`{record['command']}`, {provenance(record)}: {loader_summary(record)}.)"


def cdna_block(records: dict[str, dict]) -> str:
    record = records.get("cdna")
    if record is None:
        return f"Results: {MISSING} (`{COMMANDS['cdna']}` records them)."
    heads = record["figures"]["heads"]
    header = (
        "| head | updates | train s | PSNR true | PSNR shuffled | PSNR copy-last | gain dB "
        "| shuffle drop dB | SSIM true | SSIM copy-last |"
    )
    lines = [header, "|" + "---|" * 10]
    lines += [
        f"| {h['head']} | {h['updates']} | {h['train_seconds']:.0f} | "
        f"{h['true_actions_psnr']:.2f} | {h['shuffled_actions_psnr']:.2f} | "
        f"{h['copy_last_psnr']:.2f} | {h['gain_over_copy_last_db']:+.2f} | "
        f"{h['shuffle_drop_db']:.2f} | {h['true_actions_ssim']:.3f} | "
        f"{h['copy_last_ssim']:.3f} |"
        for h in heads
    ]
    return (
        f"`{record['command']}` ({provenance(record)}). Budget: "
        f"{record['protocol']['budget']}. PSNR and SSIM are means over the 8 predicted frames "
        f"of {heads[0]['test_windows']} test windows.\n\n" + "\n".join(lines)
    )


def details_block(records: dict[str, dict]) -> str:
    sections = []
    for name in SUMMARIES:
        record = records.get(name)
        if record is None:
            sections.append(f"### {name}\n\n{MISSING}: `{COMMANDS[name]}` records it.")
            continue
        protocol = "\n".join(f"- {key}: {text}" for key, text in record["protocol"].items())
        detail = DETAILS[name](record) if name in DETAILS else ""
        sections.append(
            f"### {name}\n\n`{record['command']}` ({provenance(record)})\n\n{protocol}\n\n"
            f"{SUMMARIES[name](record)}." + (f"\n\n{detail}" if detail else "")
        )
    return "\n\n".join(sections)


BLOCKS: dict[str, Callable[[dict[str, dict]], str]] = {
    "table": summary_table,
    "demo": demo_block,
    "loader": loader_block,
    "cdna": cdna_block,
    "details": details_block,
}
MARKER = re.compile(r"(<!-- benchmarks:(\w+) start -->\n)(.*?)(<!-- benchmarks:\2 end -->)", re.S)


def regenerate(text: str, records: dict[str, dict]) -> str:
    """``text`` with every generated block rebuilt from ``records``."""

    def rebuild(match: re.Match) -> str:
        start, name, _, end = match.groups()
        if name not in BLOCKS:
            raise SystemExit(f"error: unknown generated block benchmarks:{name}")
        return f"{start}{BLOCKS[name](records)}\n{end}"

    return MARKER.sub(rebuild, text)


def stale_files(root: Path = REPO, results: Path = RESULTS) -> list[str]:
    """The files whose generated blocks differ from what the records give."""
    records = load_records(results)
    return [
        name
        for name in FILES
        if (root / name).read_text() != regenerate((root / name).read_text(), records)
    ]


def missing_blocks(root: Path = REPO) -> list[str]:
    """Generated blocks that no file holds exactly once (markers removed or doubled)."""
    text = "".join((root / name).read_text() for name in FILES)
    found = [match.group(2) for match in MARKER.finditer(text)]
    return [name for name in BLOCKS if found.count(name) != 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the records")
    args = parser.parse_args()
    if args.check:
        stale = stale_files(results=args.results)
        for name in stale:
            print(
                f"{name} differs from the records: run python -m benchmarks.table", file=sys.stderr
            )
        sys.exit(1 if stale else 0)
    records = load_records(args.results)
    for name in FILES:
        path = REPO / name
        path.write_text(regenerate(path.read_text(), records))
    print(f"regenerated {', '.join(FILES)} from {len(records)} record(s) in {args.results}")


if __name__ == "__main__":
    main()
