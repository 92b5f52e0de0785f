"""notebooks/rollouts.ipynb runs top to bottom on a checkpoint trained here, so it never rots."""

from __future__ import annotations

from pathlib import Path

import nbclient
import nbformat

from conftest import compose_train
from vidgen.cli.train import train

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "rollouts.ipynb"


def test_rollouts_notebook_executes_and_shows_frames_curves_and_video(
    tmp_path, tiny_dataset, monkeypatch
):
    overrides = [f"data.root={tiny_dataset}", "data.num_workers=0", "data.batch_size=2",
                 "data.samples_per_epoch=2", "data.val_windows=1", "trainer.max_epochs=1",
                 "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
                 "test=false", "logger=csv", "model.net.stack_sizes=[3,8,16,32]",
                 "model.net.r_stack_sizes=[3,8,16,32]"]  # fmt: skip
    train(compose_train(["experiment=demo", *overrides], tmp_path / "run"))
    monkeypatch.setenv("VIDGEN_CKPT", str(tmp_path / "run/checkpoints/last.ckpt"))
    monkeypatch.setenv("VIDGEN_DATA", str(tiny_dataset))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells)  # stored without outputs
    client = nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()  # the kernel inherits VIDGEN_CKPT and VIDGEN_DATA
    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs)
    assert (
        "run/checkpoints/last.ckpt" in text and "(1, 10, 3, 32, 32) -> (1, 10, 3, 32, 32)" in text
    )
    assert "copy_last: MSE" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    videos = [o for o in outputs if "<video" in o.get("data", {}).get("text/html", "")]
    assert len(images) == 2 and len(videos) == 1  # the strip, the curves; the rollout
    assert (tmp_path / "rollout.mp4").is_file()
