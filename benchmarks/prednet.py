"""PredNet benchmarks.

(a) quality: train the demo (small PredNet on bouncing balls) for at most ``--minutes`` and
    report held-out next-frame MSE as a ratio to copy-last-frame (goal: <= 0.5);
(b) speed: training clips/s of our PredNet at the paper config (128x160, nt=10, batch 4)
    against a straightforward implementation of the same network, in the same run
    (goal: >= 1.0x), with NHWC and with NCHW activations (``PredNet(channels_last=...)``),
    plus the projected time of the paper's 18,750 updates.

    python -m benchmarks.prednet                 # both, CPU
    python -m benchmarks.prednet --skip-quality --device cuda --amp
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from benchmarks.reference_prednet import reference_prednet
from vidgen.cli.train import CONFIG_DIR, train
from vidgen.models import PredNet

RESULTS = Path(__file__).parent / "results"
PAPER_STEPS = 18_750


def quality(minutes: float, data_dir: Path) -> dict[str, float]:
    out = RESULTS / "prednet_demo"
    overrides = [
        "experiment=demo",
        f"paths.output_dir={out}",
        f"paths.log_dir={out}",
        f"paths.data_dir={data_dir}",
        f"+trainer.max_time=00:00:{int(minutes):02d}:{round(minutes % 1 * 60):02d}",
        "trainer.enable_progress_bar=false",
    ]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    start = time.perf_counter()
    metrics = train(cfg)
    return {
        "train_and_test_seconds": time.perf_counter() - start,
        "test_mse": metrics["test/mse"],
        "copy_last_mse": metrics["test/copy_last_mse"],
        "mse_ratio_to_copy_last": metrics["test/mse_ratio"],
        "test_psnr": metrics["test/psnr"],
        "copy_last_psnr": metrics["test/copy_last_psnr"],
    }


def clips_per_second(forward, net: PredNet, frames: torch.Tensor, steps: int, amp: bool) -> float:
    """Adam training steps on the L_0 loss; the first (warm-up) step is not timed."""
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    time_weights = torch.full((frames.shape[1],), 1 / (frames.shape[1] - 1), device=frames.device)
    time_weights[0] = 0
    layer_weights = torch.tensor([1.0, 0, 0, 0], device=frames.device)

    def step() -> None:
        with torch.autocast(frames.device.type, torch.bfloat16, enabled=amp):
            _, errors = forward(net, frames)
        loss = ((errors.float() @ layer_weights) @ time_weights).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    sync = torch.cuda.synchronize if frames.is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps * frames.shape[0] / (time.perf_counter() - start)


def speed(device: str, steps: int, amp: bool, compile_model: bool) -> dict[str, float]:
    """Our PredNet with NHWC and with NCHW activations against the reference, same weights."""
    torch.manual_seed(0)
    device = torch.device(device)
    net = PredNet().to(device)
    # The data module hands frames over as uint8 HWC made float: channels-last in memory.
    frames = torch.rand(4, 10, 128, 160, 3, device=device).permute(0, 1, 4, 2, 3)
    result: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "amp_bf16": amp,
        "compiled": compile_model,
        "reference_clips_per_s": clips_per_second(reference_prednet, net, frames, steps, amp),
    }
    for layout, channels_last in (("channels_last", True), ("contiguous", False)):
        ours = PredNet(channels_last=channels_last).to(device)
        ours.load_state_dict(net.state_dict())
        run = torch.compile(ours) if compile_model else ours
        rate = clips_per_second(lambda model, x, run=run: run(x), ours, frames, steps, amp)
        result[f"ours_{layout}_clips_per_s"] = rate
        result[f"speedup_{layout}"] = rate / result["reference_clips_per_s"]
    best = max(result["ours_channels_last_clips_per_s"], result["ours_contiguous_clips_per_s"])
    result["paper_run_minutes"] = PAPER_STEPS * 4 / best / 60
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget (quality)")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps (speed)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (GPU)")
    parser.add_argument("--compile", action="store_true", help="torch.compile our model")
    args = parser.parse_args()
    results = {}
    if not args.skip_speed:
        results["speed"] = speed(args.device, args.steps, args.amp, args.compile)
        s = results["speed"]
        print(
            f"speed ({s['device']}): straightforward {s['reference_clips_per_s']:.3f} clips/s; "
            f"ours NHWC {s['ours_channels_last_clips_per_s']:.3f} "
            f"({s['speedup_channels_last']:.2f}x), NCHW {s['ours_contiguous_clips_per_s']:.3f} "
            f"({s['speedup_contiguous']:.2f}x); 18,750 paper steps would take "
            f"{s['paper_run_minutes']:.0f} min"
        )
    if not args.skip_quality:
        results["quality"] = q = quality(args.minutes, args.data_dir)
        print(
            f"quality: demo next-frame MSE {q['test_mse']:.5f} vs copy-last "
            f"{q['copy_last_mse']:.5f} -> ratio {q['mse_ratio_to_copy_last']:.3f} "
            f"(goal <= 0.5) after {q['train_and_test_seconds'] / 60:.1f} min"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "prednet.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**previous, **results}, indent=2))  # keep the part not rerun


if __name__ == "__main__":
    main()
