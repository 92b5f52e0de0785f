"""One record per benchmark run: the figures and everything needed to reproduce them.

Every benchmark ends by writing ``benchmarks/results/<name>.json`` through ``Run.write``:
the figures, the protocol (which split each figure comes from and how settings were
chosen), the exact command, the git commit and whether the tree was dirty, the UTC date,
torch version, device, torch threads and wall time. A record is one run and is replaced
whole by the next; ``python -m benchmarks.table`` turns the records into README's tables.
Scratch (datasets, checkpoints, videos) goes to ``benchmarks/work``, which git ignores.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
WORK = ROOT / "work"


def parser(doc: str) -> argparse.ArgumentParser:
    """A benchmark's argument parser, with ``--results`` (where its record goes)."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument(
        "--results", type=Path, default=RESULTS, help="folder for the record (default: %(default)s)"
    )
    return p


def settings(args: argparse.Namespace) -> dict[str, object]:
    """The parsed options as JSON values (paths as strings), without ``--results``."""
    return {
        key: str(value) if isinstance(value, Path) else value
        for key, value in vars(args).items()
        if key != "results"
    }


def command_line() -> str:
    """The command as run, e.g. ``python -m benchmarks.cdna --updates 250``."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    program = f"python -m {spec.name}" if spec else f"python {sys.argv[0]}"
    return " ".join([program, *map(shlex.quote, sys.argv[1:])])


def git_state() -> dict[str, object]:
    """HEAD and whether tracked files differ from it; records are left out of the check,
    since running the benchmarks one after another rewrites them."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(ROOT.parent), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "HEAD")
    changes = git("status", "--porcelain", "--untracked-files=no", ":!benchmarks/results")
    return {"commit": commit or "unknown", "dirty": bool(changes) if commit else None}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description(device: str | torch.device = "cpu") -> str:
    """The GPU's name, or the CPU model, the cores this process may use and the widest vector
    instructions PyTorch uses on it (the same model name can come with or without AVX-512)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu_model()}, {cores} cores, {torch.backends.cpu.get_cpu_capability()}"


class Run:
    """One benchmark run: the clock starts at creation, when the code's commit is taken (a
    long run must not take the commit of later edits); ``write`` saves the record."""

    def __init__(self, results: Path = RESULTS) -> None:
        self.results = Path(results)
        self.started = time.perf_counter()
        self.date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self.code = git_state()

    def write(
        self,
        name: str,
        figures: dict,
        protocol: dict[str, str],
        setup: dict | None = None,
        device: str | torch.device = "cpu",
    ) -> Path:
        """Write ``<results>/<name>.json``, replacing any earlier record of that name.

        ``protocol`` says, in words, where each group of figures comes from (split, window
        count) and how any setting was chosen (on which split); ``setup`` holds the settings.
        """
        record = {
            "name": name,
            "command": command_line(),
            **self.code,
            "date": self.date,
            "torch": torch.__version__,
            "device": device_description(device),
            "threads": torch.get_num_threads(),
            "wall_seconds": round(time.perf_counter() - self.started, 1),
            "protocol": protocol,
            "setup": setup or {},
            "figures": figures,
        }
        self.results.mkdir(parents=True, exist_ok=True)
        path = self.results / f"{name}.json"
        path.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {path}")
        return path
