"""Validate a clip file and print its summary (episodes, frames, size, fps, attributes)."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from vidgen.data.store import summarize


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", help="clip files (.h5) to check")


def run(args: argparse.Namespace) -> int:
    console = Console()
    for path in args.files:
        summary = summarize(path)
        table = Table(title=str(path), show_header=False, title_justify="left")
        height, width = summary["frame_size"]
        lengths = summary["episode_length"]
        table.add_row("episodes", str(summary["episodes"]))
        table.add_row("frames", str(summary["frames"]))
        table.add_row("frame size", f"{height}x{width} RGB")
        table.add_row("episode length", f"{lengths['min']}..{lengths['max']} frames")
        table.add_row("fps", f"{summary['fps']:g}")
        for key, shape in summary["per_frame"].items():
            table.add_row(key, f"{shape} per frame")
        for key, value in summary["attributes"].items():
            if key not in ("fps",):
                table.add_row(f"@{key}", str(value))
        console.print(table)
    return 0
