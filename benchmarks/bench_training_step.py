"""Time and peak memory of one training step of Video Mask2Former at the real R50 and Swin-T sizes (random weights).

A step is the forward pass with the loss (Hungarian matching, point-sampled mask and dice losses, auxiliary losses),
the backward pass and an AdamW update, on a batch of `--batch-size` clips of `--frames` frames (defaults: 2 clips of 2
frames, as the original's `SAMPLING_FRAME_NUM`) at 384x640, with two target tracks per clip. Each model runs in a fresh
subprocess, so the peak RSS is its own; timings are the median of `--repeats` steps after one warm-up step, with the
CPU time other processes used meanwhile ("others").

    python benchmarks/bench_training_step.py --output benchmarks/results/training_step.json
"""

import argparse
import statistics
import time
from pathlib import Path

import torch
from common import (
    DEFAULT_MODELS,
    build_video_model,
    describe,
    environment,
    parse_size,
    peak_rss_mib,
    run_configurations,
    timed,
    video_config,
    write_report,
)


def synthetic_batch(batch_size: int, num_frames: int, height: int, width: int, num_labels: int):
    """Normalised frames `(batch, T, 3, H, W)`, and per clip two box tracks `(2, T, H, W)` with their classes."""
    generator = torch.Generator().manual_seed(0)
    pixel_values = torch.randn(batch_size, num_frames, 3, height, width, generator=generator)
    mask_labels, class_labels = [], []
    for _ in range(batch_size):
        masks = torch.zeros(2, num_frames, height, width)
        masks[0, :, height // 8 : height // 2, width // 8 : width // 2] = 1
        masks[1, :, height // 3 : height - height // 8, width // 2 : width - width // 8] = 1
        mask_labels.append(masks)
        class_labels.append(torch.randint(0, num_labels, (2,), generator=generator))
    return pixel_values, mask_labels, class_labels


def time_training_step(model, optimizer, pixel_values, mask_labels, class_labels, repeats: int) -> dict:
    """`repeats` training steps after a warm-up one; per step the wall time of forward, backward and update."""
    per_step = []

    def step():
        start = time.perf_counter()
        loss = model(pixel_values, mask_labels=mask_labels, class_labels=class_labels).loss
        forward = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        backward = time.perf_counter()
        optimizer.step()
        per_step.append(
            {"forward": forward - start, "backward": backward - forward, "update": time.perf_counter() - backward}
        )
        return loss.item()

    runs, loss = timed(step, repeats)
    return {"runs": runs, "stages": per_step[1:], "loss": loss}


def run_configuration(spec: dict) -> dict:
    """One model's training step in this process; `spec` holds model, threads, batch_size, frames, frame_size."""
    torch.set_num_threads(spec["threads"])
    config = video_config(spec["model"])
    model = build_video_model(config).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.05)
    batch = synthetic_batch(spec["batch_size"], spec["frames"], *spec["frame_size"], config.num_labels)
    rss_built = peak_rss_mib()
    result = time_training_step(model, optimizer, *batch, spec["repeats"])
    return {
        **spec,
        **result,
        "seconds": statistics.median(run["wall"] for run in result["runs"]),
        "cpu_seconds": statistics.median(run["cpu"] for run in result["runs"]),
        "others_cpu_seconds": statistics.median(run["others_cpu"] for run in result["runs"]),
        "peak_rss_mib": peak_rss_mib(),
        "rss_after_build_mib": rss_built,
    }


def summary_rows(results: list[dict]) -> list[str]:
    baselines = {r["model"]: r for r in results if r.get("source") == "baseline"}
    lines = [
        f"{'model':<22} {'source':<9} {'step s':>7} {'CPU s':>7} {'others':>6} {'peak RSS MiB':>12} {'stages (s)':<42} "
        "ratios"
    ]
    for r in results:
        stages = " ".join(f"{name} {statistics.median(s[name] for s in r['stages']):.2f}" for name in r["stages"][0])
        ratio = ""
        baseline = baselines.get(r["model"])
        if r.get("source", "current") == "current" and baseline:
            ratio = (
                f"{baseline['seconds'] / r['seconds']:.2f}x faster, "
                f"{baseline['peak_rss_mib'] / r['peak_rss_mib']:.2f}x less peak RSS than baseline"
            )
        lines.append(
            f"{Path(r['model']).stem:<22} {r.get('source', 'current'):<9} {r['seconds']:>7.2f} "
            f"{r['cpu_seconds']:>7.1f} {r['others_cpu_seconds']:>6.1f} {r['peak_rss_mib']:>12.0f} {stages:<42} {ratio}"
        )
    return lines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, help="preset names or original yaml configs")
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--frame-size", type=parse_size, default=[384, 640], help="HxW of the (padded) frames")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed steps after one warm-up step")
    parser.add_argument("--baseline-rev", help="also run with the package at this git revision, interleaved")
    parser.add_argument(
        "--wait-idle", type=float, default=0, help="wait up to this many seconds for idle CPUs before each run"
    )
    parser.add_argument("--output", help="write the results as JSON here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        import json

        print(json.dumps(run_configuration(json.loads(args.child))))
        return {}

    report = {"environment": environment(args.threads), "settings": vars(args), "results": []}
    print(describe(report["environment"]), flush=True)
    keys = ("threads", "frames", "batch_size", "frame_size", "repeats")
    specs = [{"model": model} | {key: getattr(args, key) for key in keys} for model in args.models]
    report["results"] = run_configurations(
        __file__, specs, lambda result: summary_rows([result])[1], args.baseline_rev, args.wait_idle
    )
    print("\n" + "\n".join(summary_rows(report["results"])))
    write_report(args.output, report)
    return report


if __name__ == "__main__":
    main()
