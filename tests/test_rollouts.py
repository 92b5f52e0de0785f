"""vidgen.load, vidgen-rollout and vidgen-compare: checkpoints in, videos and tables out,
metrics checked against a hand computation, user mistakes as one line."""

from __future__ import annotations

import re
import sys

import av
import h5py
import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch import nn

import vidgen
from conftest import trained_checkpoint
from data_prep.synthetic import generate_dataset
from vidgen.cli import compare as compare_cli
from vidgen.cli import rollout as rollout_cli
from vidgen.cli.train import compose_config
from vidgen.errors import VidgenError
from vidgen.eval.compare import next_frame_predictions, pick_windows, rollouts
from vidgen.tasks import PredNetTask

SMALL_PREDNET = ["model.net.stack_sizes=[3,8,16,32]", "model.net.r_stack_sizes=[3,8,16,32]"]


class IdentityPredictor(nn.Module):
    """A synthetic "model" for the hand check: its future is its context, unchanged."""

    def rollout(self, frames, horizon, actions=None):
        return frames[:, :horizon]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tiny_dataset):
    """Two training steps of a small PredNet: a real checkpoint from vidgen-train."""
    extra = ["trainer.enable_model_summary=false", "logger=csv", *SMALL_PREDNET]
    return trained_checkpoint("demo", tiny_dataset, tmp_path_factory.mktemp("run"), extra)


def test_load_rebuilds_the_task_and_rolls_out_past_the_training_length(tiny_checkpoint):
    model = vidgen.load(tiny_checkpoint)
    assert isinstance(model, PredNetTask) and not model.training
    saved = torch.load(tiny_checkpoint, weights_only=True)["state_dict"]
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    context = torch.rand(2, 3, 3, 32, 32)
    future = model.rollout(context, horizon=15)  # trained on 10-frame windows
    assert future.shape == (2, 15, 3, 32, 32) and not future.requires_grad
    assert future.min() >= 0 and future.max() <= 1
    assert torch.equal(vidgen.load("copy_last").rollout(context, 2)[:, 1], context[:, -1])


def test_load_refuses_what_is_not_a_vidgen_checkpoint(tmp_path):
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    torch.save({"state_dict": {}}, tmp_path / "plain.ckpt")
    torch.save({"model": IdentityPredictor()}, tmp_path / "pickled.ckpt")  # needs unpickling
    for name in ("notes", "plain", "pickled"):
        with pytest.raises(VidgenError, match="is not a vidgen checkpoint"):
            vidgen.load(tmp_path / f"{name}.ckpt")
    with pytest.raises(VidgenError, match="does not exist"):
        vidgen.load(tmp_path / "missing.ckpt")


def test_picking_clips_by_index_first_or_seeded_random():
    assert pick_windows(10, 3) == [0, 1, 2] and pick_windows(10, None) == list(range(10))
    assert pick_windows(10, 3, indices=[7, 2]) == [7, 2]
    drawn = pick_windows(10, 4, seed=1)
    assert drawn == pick_windows(10, 4, seed=1) != pick_windows(10, 4, seed=2)
    assert len(set(drawn)) == 4 and drawn == sorted(drawn)
    with pytest.raises(VidgenError, match="out of range"):
        pick_windows(10, 3, indices=[10])


class Recorder(nn.Module):
    """Predicts zeros and remembers what it was conditioned on."""

    def rollout(self, frames, horizon, **inputs):
        self.inputs = inputs
        return frames.new_zeros(frames.shape[0], horizon, *frames.shape[2:])


class ConditionedRecorder(Recorder):
    def conditioning(self, batch, length):  # as a task with states (CDNA) defines it
        return {"actions": batch["actions"][:, :length], "states": batch["states"][:, :1]}


def test_rollouts_pass_actions_for_context_and_future_and_task_conditioning():
    batch = {"frames": torch.rand(2, 12, 3, 8, 8), "actions": torch.rand(2, 12, 4),
             "states": torch.rand(2, 12, 5)}  # fmt: skip
    models = {"plain": Recorder(), "task": ConditionedRecorder()}
    out = rollouts(models, batch, context=2, horizon=3)
    assert out["plain"].shape == out["task"].shape == (2, 3, 3, 8, 8)
    assert torch.equal(models["plain"].inputs["actions"], batch["actions"][:, :5])
    assert models["task"].inputs.keys() == {"actions", "states"}
    assert torch.equal(models["task"].inputs["states"], batch["states"][:, :1])
    rollouts({"plain": models["plain"]}, {"frames": batch["frames"]}, 2, 3)
    assert models["plain"].inputs == {}


def test_rollout_renders_past_the_end_of_the_clips(tiny_checkpoint, tiny_dataset, tmp_path):
    out = tmp_path / "rollout.mp4"
    cfg = compose_config(
        "rollout",
        [f"ckpt={tiny_checkpoint}", "data=folder", f"data.root={tiny_dataset}", f"out={out}",
         "split=train", "clips=3", "random=true", "context=10", "horizon=20", "frames=true"],
    )  # fmt: skip
    rollout_cli.render_rollout(cfg)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        fps = float(stream.average_rate)
    # 10 context + 20 predicted frames of 24-frame episodes; 3 rows of 4 panels of 32x32 x4.
    assert len(frames) == 30 and fps == 10.0
    assert frames[0].shape == (36 + 3 * (128 + 4), 4 * (128 + 4), 3)
    last_truth = frames[-1][36 + 2 : 36 + 130, 132 + 2 : 132 + 130]  # after the clip ended
    assert abs(last_truth.astype(int) - 128).mean() < 3  # gray: no ground truth there
    assert out.with_suffix(".png").is_file()


def hand_metrics(pred, target):
    """Per-step means of [N, T, H, W, C] float64 frames, in numpy, named as metrics.csv:
    MSE and MAE per pixel and summed per frame, PSNR, and SSIM with an 11-tap Gaussian
    (sigma 1.5) over reflect-padded frames, C1, C2 of range 1."""
    mse = ((pred - target) ** 2).mean(axis=(2, 3, 4))
    psnr = -10 * np.log10(np.maximum(mse, 1e-10))
    taps = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    taps /= taps.sum()

    def blur(a):
        a = np.pad(a, [(0, 0), (0, 0), (5, 5), (5, 5), (0, 0)], mode="reflect")
        a = sliding_window_view(a, 11, axis=2) @ taps
        return sliding_window_view(a, 11, axis=3) @ taps

    mx, my = blur(pred), blur(target)
    sxx = np.maximum(blur(pred * pred) - mx**2, 0)
    syy = np.maximum(blur(target * target) - my**2, 0)
    sxy = blur(pred * target) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    ssim = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    per_frame = {
        "mse_per_pixel": mse,
        "mse_per_frame_sum": ((pred - target) ** 2).sum(axis=(2, 3, 4)),
        "mae_per_pixel": np.abs(pred - target).mean(axis=(2, 3, 4)),
        "mae_per_frame_sum": np.abs(pred - target).sum(axis=(2, 3, 4)),
        "psnr": psnr,
        "ssim": ssim.mean(axis=(2, 3, 4)),
    }
    return {name: values.mean(0) for name, values in per_frame.items()}


def test_compare_matches_hand_metrics_and_writes_a_complete_report(
    tiny_checkpoint, tiny_dataset, tmp_path, monkeypatch
):
    # A saved model may only name vidgen's own classes, so the identity stands in at load.
    identity, load = tmp_path / "identity.ckpt", compare_cli.load
    monkeypatch.setattr(
        compare_cli, "load", lambda ckpt, device: IdentityPredictor()
        if ckpt == str(identity) else load(ckpt, device),
    )  # fmt: skip
    out, context, horizon = tmp_path / "report", 3, 3
    cfg = compose_config(
        "compare",
        [f"ckpts=[{identity},{tiny_checkpoint}]", "names=[identity,prednet]", "data=folder",
         f"data.root={tiny_dataset}", f"out={out}", "split=train", f"context={context}",
         f"horizon={horizon}", "batch_size=5", "video_clips=2", "progress=false"],
    )  # fmt: skip
    compare_cli.compare(cfg)

    # By hand: every non-overlapping 6-frame window of every training episode.
    with h5py.File(tiny_dataset / "train.h5", "r", locking=False) as f:
        frames, starts = f["frames"][()] / 255.0, f["episode_starts"][()]
    span = context + horizon
    episodes = zip(starts[:-1], starts[1:], strict=True)
    windows = np.stack([frames[s : s + span] for first, last in episodes
                        for s in range(first, last - span + 1, span)])  # fmt: skip
    assert len(windows) == 32  # 8 episodes x 4 windows: batches of 5 end unevenly
    target = windows[:, context:]
    copy_last_next = windows[:, context - 1 : context + horizon - 1]
    expected = {  # identity's one-frame rollout from any prefix is that prefix's first frame
        ("rollout", "identity"): hand_metrics(windows[:, :horizon], target),
        ("rollout", "copy_last"): hand_metrics(
            np.repeat(windows[:, context - 1 : context], horizon, 1), target
        ),
        ("next_frame", "identity"): hand_metrics(np.repeat(windows[:, :1], horizon, 1), target),
        ("next_frame", "copy_last"): hand_metrics(copy_last_next, target),
    }
    rows = [line.split(",") for line in (out / "metrics.csv").read_text().splitlines()]
    assert rows[0] == ["protocol", "model", "metric", "step", "value"]
    table = {tuple(row[:4]): float(row[4]) for row in rows[1:]}
    # 2 protocols x 3 models x 6 metrics x (steps + mean)
    assert len(table) == 2 * 3 * 6 * (horizon + 1)
    for (protocol, model), metrics in expected.items():
        for name, per_step in metrics.items():
            for step, value in enumerate(per_step, start=1):
                got = table[protocol, model, name, str(step)]
                assert got == pytest.approx(value, rel=1e-6, abs=1e-6)
            got = table[protocol, model, name, "mean"]
            assert got == pytest.approx(per_step.mean(), rel=1e-6, abs=1e-6)
    # PredNet's own next-frame path scores what vidgen-train's next-frame test scores:
    # better than its own rollout beyond the first step.
    assert (
        table["next_frame", "prednet", "mse_per_pixel", "mean"]
        != table["rollout", "prednet", "mse_per_pixel", "mean"]
    )

    summary = (out / "metrics.md").read_text()
    assert "## rollout: 3 true frames in, 3 predicted" in summary
    assert "## next_frame: each of the 3 frames after the first 3 predicted" in summary
    assert len(re.findall(r"\| copy_last \| .* \| 1\.000 \|", summary)) == 2
    assert "| prednet |" in summary and "| identity |" in summary
    header = summary.splitlines()[2]
    assert "MSE per pixel" in header and "MAE per frame (sum)" in header and "OpenSTL" in summary
    report = (out / "report.html").read_text()
    assert "rollout: 3 true frames in" in report and "next_frame: each of the 3" in report
    referenced = set(re.findall(r'(?:src|href)="([^"]+)"', report))
    assert referenced == {"metrics.csv", "metrics.md", "curves_rollout.png",
                          "curves_next_frame.png", "side_by_side.mp4"}  # fmt: skip
    assert all((out / name).is_file() and (out / name).stat().st_size > 0 for name in referenced)
    with av.open(str(out / "side_by_side.mp4")) as container:
        video = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    # truth | identity | prednet | copy_last; two clips.
    assert len(video) == span and video[0].shape == (36 + 2 * 132, 4 * 132, 3)


@pytest.fixture(scope="module")
def large_frames(tmp_path_factory):
    """36x36 frames: not divisible by 8, so no 4-layer PredNet takes them."""
    out = tmp_path_factory.mktemp("data") / "balls36"
    generate_dataset(out, episodes=3, frames=12, size=36, seed=0)
    return out


@pytest.mark.parametrize(
    "command, args, message",
    [
        ("rollout", ["horizon=0"], "horizon must be at least 1 frame"),
        ("rollout", ["context=30"], "context=30 is longer than the clips"),
        ("rollout", ["ckpt=NOTES"], "is not a vidgen checkpoint"),
        ("rollout", ["data=LARGE", "context=2", "horizon=2"], "do not fit this PredNet"),
        ("rollout", ["out=clip.gif"], "must name an .mp4 file"),
        ("rollout", ["data=no/such/folder"], "neither a data config nor a dataset folder"),
        ("compare", ["horizon=20"], "needs clips of 30 frames"),
        ("compare", ["ckpts=[]"], "ckpts is empty"),
    ],
)
def test_user_mistakes_are_one_line(
    command, args, message, tiny_checkpoint, tiny_dataset, large_frames, tmp_path, monkeypatch,
    capsys,
):  # fmt: skip
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    key = "ckpt" if command == "rollout" else "ckpts"
    ckpt = str(tiny_checkpoint) if command == "rollout" else f"[{tiny_checkpoint}]"
    base = [f"{key}={ckpt}", f"data={tiny_dataset}", "out=result.mp4", "context=10"]
    given = [a.replace("NOTES", str(tmp_path / "notes.ckpt")) for a in args]
    given = [a.replace("LARGE", str(large_frames)) for a in given]
    argv = {a.split("=")[0]: a for a in base} | {a.split("=")[0]: a for a in given}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [command, *argv.values()])
    main = rollout_cli.main if command == "rollout" else compare_cli.main
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.count("\n") == 0 and err.startswith("error: ")
    assert message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.ckpt"]  # nothing written


class ActionEcho(nn.Module):
    """Predicts frame Tc + k as the first action component of step Tc - 1 + k, everywhere."""

    def rollout(self, frames, horizon, actions=None):
        steps = actions[:, frames.shape[1] - 1 : frames.shape[1] - 1 + horizon, :1]  # B h 1
        return steps[..., None, None].expand(-1, -1, *frames.shape[2:])


def test_next_frame_protocol_predicts_each_frame_from_its_own_prefix_and_actions():
    frames = torch.rand(2, 7, 3, 4, 4)
    actions = torch.arange(2 * 7, dtype=torch.float32).reshape(2, 7, 1)
    batch = {"frames": frames, "actions": actions}
    context, horizon = 3, 4
    predicted = next_frame_predictions({"echo": ActionEcho()}, batch, context, horizon)["echo"]
    # frame t (t = 3..6) is predicted from frames < t with the action at t - 1 driving it
    expected = actions[:, context - 1 : context + horizon - 1, 0]
    assert torch.equal(predicted[:, :, 0, 0, 0], expected)
    rolled = rollouts({"echo": ActionEcho()}, batch, context, horizon)["echo"]
    assert torch.equal(rolled, predicted)  # the echo ignores frames: both protocols agree
    with pytest.raises(VidgenError, match="protocol=sideways is not one of both"):
        compare_cli.chosen_protocols("sideways")
