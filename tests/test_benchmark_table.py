"""README's and docs' benchmark figures are generated from the committed records."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import table
from benchmarks.record import Run

REPO = Path(__file__).resolve().parents[1]


def cdna_record(gain_db: float) -> dict:
    """A record as ``benchmarks.cdna`` writes it, with one head."""
    head = {
        "head": "cdna",
        "updates": 250,
        "batch_size": 16,
        "train_seconds": 200.0,
        "test_windows": 150,
        "true_actions_psnr": 21.81 + gain_db,
        "true_actions_ssim": 0.95,
        "shuffled_actions_psnr": 22.5,
        "shuffled_actions_ssim": 0.9,
        "copy_last_psnr": 21.81,
        "copy_last_ssim": 0.874,
        "gain_over_copy_last_db": gain_db,
        "shuffle_drop_db": 21.81 + gain_db - 22.5,
    }
    return {
        "name": "cdna",
        "command": "python -m benchmarks.cdna",
        "commit": "0123456789abcdef",
        "dirty": False,
        "date": "2030-01-02T03:04:05+00:00",
        "torch": "2.14.1",
        "device": "Test CPU, 2 cores",
        "threads": 1,
        "wall_seconds": 600.0,
        "protocol": {"figures": "test split", "budget": "equal optimizer updates (250)"},
        "setup": {"updates": 250},
        "figures": {"heads": [head]},
    }


def test_readme_and_docs_agree_with_the_committed_records():
    assert table.stale_files() == [], "run: python -m benchmarks.table"
    assert table.missing_blocks() == []


def test_a_changed_record_changes_the_tables():
    text = (REPO / "README.md").read_text() + (REPO / "docs" / "cdna.md").read_text()
    before = table.regenerate(text, {"cdna": cdna_record(7.91)})
    after = table.regenerate(text, {"cdna": cdna_record(5.0)})
    assert before != after
    # 21.81 + 7.91 = 29.72 dB with the model, +7.9 dB over copy-last in README's summary.
    assert "| cdna | 250 | 200 | 29.72 | 22.50 | 21.81 | +7.91 | 7.22 |" in before
    assert "CDNA +7.9 dB" in before and "CDNA +5.0 dB" in after
    assert "2030-01-02, `0123456`, Test CPU, 2 cores, 1 thread(s), 10 min" in before


def test_a_missing_record_is_not_yet_measured():
    text = (REPO / "README.md").read_text()
    generated = table.regenerate(text, {})
    row = next(line for line in generated.splitlines() if line.startswith("| cdna |"))
    assert row == "| cdna | `python -m benchmarks.cdna` | not yet measured |  |"


def test_check_fails_when_a_generated_block_is_edited_by_hand(tmp_path):
    for name in table.FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    assert table.stale_files(root=tmp_path) == []
    readme = tmp_path / "README.md"
    start = "<!-- benchmarks:table start -->\n"
    readme.write_text(readme.read_text().replace(start, start + "| cdna | 9.99 dB |\n"))
    assert table.stale_files(root=tmp_path) == ["README.md"]


def test_check_command_exits_non_zero_on_a_record_the_docs_do_not_show(
    tmp_path, monkeypatch, capsys
):
    (tmp_path / "cdna.json").write_text(json.dumps(cdna_record(7.91)))
    monkeypatch.setattr(sys, "argv", ["table", "--check", "--results", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_:
        table.main()
    assert exit_.value.code == 1
    assert "README.md differs from the records" in capsys.readouterr().err


def test_a_record_holds_the_run_and_its_provenance(tmp_path):
    figures = {"ratio": 0.5}
    path = Run(tmp_path).write("demo", figures, {"figures": "test split"}, {"epochs": 5})
    record = json.loads(path.read_text())
    assert path == tmp_path / "demo.json"
    assert record["figures"] == figures and record["setup"] == {"epochs": 5}
    assert record["protocol"] == {"figures": "test split"}
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True)
    assert record["commit"] == head.stdout.decode().strip() and isinstance(record["dirty"], bool)
    assert record["date"].endswith("+00:00") and record["wall_seconds"] >= 0
    assert record["command"].startswith("python ")
    assert {"torch", "device", "threads"} <= record.keys()


def test_planning_stride_is_chosen_on_validation_tables_and_scored_on_test_tables(monkeypatch):
    from benchmarks import billiards

    validation = {1: 0.2, 5: 0.6, 20: 0.4}  # stride 5 wins on validation...
    test = {1: 0.9, 5: 0.3, 20: 0.1}  # ...though stride 1 would look better on test
    calls = []

    def success(net, problems, stride):
        split = "validation" if problems is split_problems["validation"] else "test"
        calls.append((split, stride))
        return (validation if split == "validation" else test)[stride]

    split_problems = {}
    real_problems = billiards.planning_problems

    def problems(config, count, split):
        split_problems[split] = real_problems(config, count, split)
        return split_problems[split]

    monkeypatch.setattr(billiards, "planning_success", success)
    monkeypatch.setattr(billiards, "planning_problems", problems)
    args = argparse.Namespace(val_plans=2, plans=3, plan_strides=[1, 5, 20])
    report = billiards.planning_report({"oc": object()}, args)
    assert report["oc"]["chosen_stride"] == 5 and report["oc"]["test_success"] == 0.3
    assert report["oc"]["validation_success_by_stride"] == {"1": 0.2, "5": 0.6, "20": 0.4}
    assert [c for c in calls if c[0] == "test"] == [("test", 5)]
    assert report["problems"] == {"validation": 2, "test": 3}
    tables = {split: [p.positions.tobytes() for p in ps] for split, ps in split_problems.items()}
    assert not set(tables["validation"]) & set(tables["test"])
