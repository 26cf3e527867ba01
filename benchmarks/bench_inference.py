"""Inference speed and peak memory of Video Mask2Former at the real R50 and Swin-T sizes (random weights), on CPU.

Every configuration runs in a fresh subprocess, so its peak RSS (`getrusage`: imports, model build, warm-up and the
timed runs) is its own. Configurations:

- `video`: what the original's CPU baseline timed: `T` uint8 frames of 360x640 through the video processor (padded to
  384x640), the model, and the post-processing of the top-10 tracks to 720x1280;
- `image`: transformers' image `Mask2FormerForUniversalSegmentation` with the same backbone and sizes, one padded frame
  at a time, without post-processing: the per-frame floor;
- `full` / `windowed` (when `modeling_video_mask2former.windowed` exists): `segment_clip` on the whole clip against
  `segment_video_windowed`, both ending in per-frame RLE, at growing `T`.

With `--baseline-rev REV`, every `video` configuration also runs with the package as of git revision REV, interleaved
with the current one, and the table gives the ratios. Timings are the median of `--repeats` runs after one warm-up;
the CPU time other processes used meanwhile is recorded with each configuration ("others"), since on a shared machine
they skew wall times; `--wait-idle` waits for idle CPUs before each configuration.

    python benchmarks/bench_inference.py --output benchmarks/results/inference.json
    python benchmarks/bench_inference.py --baseline-rev HEAD~1 --models ytvis_2019_R50 --frames 4 16
"""

import argparse
import importlib.util
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from common import (
    DEFAULT_MODELS,
    build_video_model,
    describe,
    environment,
    parse_size,
    peak_rss_mib,
    run_configurations,
    synthetic_frames,
    timed,
    video_config,
    write_report,
)


def build_image_model(video_config):
    """transformers' image Mask2Former with the video model's backbone and sizes (random weights)."""
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation

    fields = {k: v for k, v in video_config.to_dict().items() if k in Mask2FormerConfig.__dataclass_fields__}
    torch.manual_seed(0)
    return Mask2FormerForUniversalSegmentation(Mask2FormerConfig(**fields)).eval()


class StageTimer:
    """Wall time spent in named submodules, summed over calls (the pixel-level module may run chunk by chunk)."""

    def __init__(self, modules: dict[str, torch.nn.Module]):
        self.seconds = dict.fromkeys(modules, 0.0)
        self._starts = {}
        for name, module in modules.items():
            module.register_forward_pre_hook(lambda *_, name=name: self._starts.__setitem__(name, time.perf_counter()))
            module.register_forward_hook(lambda *_, name=name: self._stop(name))

    def _stop(self, name: str) -> None:
        self.seconds[name] += time.perf_counter() - self._starts.pop(name)

    def take(self) -> dict[str, float]:
        seconds, self.seconds = self.seconds, dict.fromkeys(self.seconds, 0.0)
        return seconds


def model_stages(model) -> StageTimer:
    """Backbone, pixel decoder and transformer decoder of a video or image Mask2Former."""
    pixel_level = model.model.pixel_level_module
    return StageTimer(
        {
            "backbone": pixel_level.encoder,
            "pixel_decoder": pixel_level.decoder,
            "transformer_decoder": model.model.transformer_module,
        }
    )


def time_video(model, processor, frames: np.ndarray, target_size: tuple[int, int], repeats: int) -> dict:
    """The full pipeline on one clip: pre-processing, model, post-processing of the top-k tracks to `target_size`."""
    stages = model_stages(model)
    per_run = []

    def run():
        stages.take()
        start = time.perf_counter()
        inputs = processor(videos=[frames], return_tensors="pt")
        preprocess = time.perf_counter()
        with torch.inference_mode():
            outputs = model(inputs["pixel_values_videos"])
            forward = time.perf_counter()
            (tracks,) = processor.post_process_video_instance_segmentation(
                outputs, target_sizes=[target_size], resized_sizes=inputs["resized_sizes"]
            )
        end = time.perf_counter()
        per_run.append(
            {
                "preprocess": preprocess - start,
                **stages.take(),
                "model": forward - preprocess,
                "postprocess": end - forward,
            }
        )
        return tracks

    runs, tracks = timed(run, repeats)
    return {"runs": runs, "stages": per_run[1:], "tracks": len(tracks), "mask_shape": list(tracks[0]["masks"].shape)}


def time_image(model, pixel_values: torch.Tensor, repeats: int) -> dict:
    """transformers' image model on `(T, 3, H, W)` padded frames, one at a time."""
    stages = model_stages(model)
    per_run = []

    def run():
        stages.take()
        with torch.inference_mode():
            for frame in pixel_values:
                model(pixel_values=frame[None])
        per_run.append(stages.take())

    runs, _ = timed(run, repeats)
    return {"runs": runs, "stages": per_run[1:]}


def time_windowed(model, processor, frames: np.ndarray, mode: str, window: int, overlap: int) -> dict:
    """`segment_clip` on all frames (`full`) or `segment_video_windowed`, after a 2-frame warm-up."""
    from modeling_video_mask2former.windowed import segment_clip, segment_video_windowed

    top_k = model.config.test_top_k

    def run():
        with torch.inference_mode():
            if mode == "full":
                return segment_clip(model, processor, list(frames), top_k)
            return segment_video_windowed(model, processor, iter(frames), window, overlap, top_k=top_k)

    with torch.inference_mode():
        segment_clip(model, processor, list(frames[:2]), top_k)
    runs, tracks = timed(run, 1, warm_up=False)
    return {"runs": runs, "tracks": len(tracks)}


def run_configuration(spec: dict) -> dict:
    """Measures one configuration in this process (see the module docstring); `spec` as built by `plan`."""
    from modeling_video_mask2former import VideoMask2FormerVideoProcessor

    torch.set_num_threads(spec["threads"])
    config = video_config(spec["model"])
    model = (build_image_model if spec["kind"] == "image" else build_video_model)(config)
    height, width = spec["frame_size"]
    frames = synthetic_frames(spec["frames"], height, width)
    processor = VideoMask2FormerVideoProcessor(size={"shortest_edge": min(height, width), "longest_edge": 1333})
    rss_built = peak_rss_mib()

    if spec["kind"] == "video":
        result = time_video(model, processor, frames, tuple(spec["target_size"]), spec["repeats"])
    elif spec["kind"] == "image":
        pixel_values = processor(videos=[frames], return_tensors="pt")["pixel_values_videos"][0]
        result = time_image(model, pixel_values, spec["repeats"])
    else:
        result = time_windowed(model, processor, frames, spec["kind"], spec["window"], spec["overlap"])
    walls = [run["wall"] for run in result["runs"]]
    return {
        **spec,
        **result,
        "seconds": statistics.median(walls),
        "cpu_seconds": statistics.median(run["cpu"] for run in result["runs"]),
        "others_cpu_seconds": statistics.median(run["others_cpu"] for run in result["runs"]),
        "frames_per_second": spec["frames"] / statistics.median(walls),
        "peak_rss_mib": peak_rss_mib(),
        "rss_after_build_mib": rss_built,
    }


def plan(args: argparse.Namespace) -> list[dict]:
    """The configurations to run, in order."""
    common = {
        "threads": args.threads,
        "frame_size": args.frame_size,
        "target_size": args.target_size,
        "repeats": args.repeats,
    }
    frames = args.frames + ([64] if args.long else [])
    specs = []
    for model in args.models:
        specs += [{"kind": "video", "model": model, "frames": t, **common} for t in frames]
        if not args.skip_image:
            specs += [{"kind": "image", "model": model, "frames": t, **common} for t in frames]
        if args.windowed_frames and importlib.util.find_spec("modeling_video_mask2former.windowed") is not None:
            for t in args.windowed_frames + ([64] if args.long else []):
                for kind in ("full", "windowed"):
                    specs.append(
                        {"kind": kind, "model": model, "frames": t, "window": args.window, "overlap": args.overlap}
                        | common
                    )
    return specs


def summary_rows(results: list[dict]) -> list[str]:
    """One table line per configuration, with the ratios measured in the same run."""
    by_key = {(r["kind"], r["model"], r["frames"], r.get("source", "current")): r for r in results}
    lines = [
        f"{'kind':<9} {'model':<22} {'T':>3} {'source':<9} {'median s':>9} {'frames/s':>8} {'CPU s':>7} "
        f"{'others':>6} {'peak RSS MiB':>12} {'stages (s)':<60} ratios"
    ]
    for r in results:
        source = r.get("source", "current")
        stages = ""
        if r.get("stages"):
            names = [name for name in r["stages"][0] if name != "model"]
            stages = " ".join(f"{name} {statistics.median(s[name] for s in r['stages']):.2f}" for name in names)
        ratios = []
        if r["kind"] == "video" and source == "current":
            image = by_key.get(("image", r["model"], r["frames"], "current"))
            if image:
                ratios.append(f"{image['seconds'] / r['seconds']:.2f}x faster than per-frame image model")
            baseline = by_key.get(("video", r["model"], r["frames"], "baseline"))
            if baseline:
                ratios.append(
                    f"{baseline['seconds'] / r['seconds']:.2f}x faster, "
                    f"{baseline['peak_rss_mib'] / r['peak_rss_mib']:.2f}x less peak RSS than baseline"
                )
        if r["kind"] == "windowed":
            full = by_key.get(("full", r["model"], r["frames"], source))
            if full:
                ratios.append(
                    f"time {r['seconds'] / full['seconds']:.2f}x, "
                    f"peak RSS {r['peak_rss_mib'] / full['peak_rss_mib']:.2f}x of full"
                )
        lines.append(
            f"{r['kind']:<9} {Path(r['model']).stem:<22} {r['frames']:>3} {source:<9} {r['seconds']:>9.2f} "
            f"{r['frames_per_second']:>8.2f} {r['cpu_seconds']:>7.1f} {r['others_cpu_seconds']:>6.1f} "
            f"{r['peak_rss_mib']:>12.0f} {stages:<60} "
            + "; ".join(ratios)
        )
    return lines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, help="preset names or original yaml configs")
    parser.add_argument("--frames", type=int, nargs="+", default=[1, 4, 16], help="clip lengths T")
    parser.add_argument("--long", action="store_true", help="also T=64")
    parser.add_argument("--frame-size", type=parse_size, default=[360, 640], help="HxW of the input frames")
    parser.add_argument("--target-size", type=parse_size, default=[720, 1280], help="HxW of the post-processed masks")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up")
    parser.add_argument("--skip-image", action="store_true", help="skip the per-frame image-model floor")
    parser.add_argument("--windowed-frames", type=int, nargs="*", default=[16, 32], help="T for full vs windowed")
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--overlap", type=int, default=2)
    parser.add_argument("--baseline-rev", help="also run the video configurations with the package at this revision")
    parser.add_argument(
        "--wait-idle", type=float, default=0, help="wait up to this many seconds for idle CPUs before each run"
    )
    parser.add_argument("--output", help="write the results as JSON here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_configuration(json.loads(args.child))))
        return {}

    report = {"environment": environment(args.threads), "settings": vars(args), "results": []}
    print(describe(report["environment"]), flush=True)
    report["results"] = run_configurations(
        __file__,
        plan(args),
        lambda result: summary_rows([result])[1],
        args.baseline_rev,
        args.wait_idle,
        has_baseline=lambda spec: spec["kind"] == "video",
    )
    print("\n" + "\n".join(summary_rows(report["results"])))
    write_report(args.output, report)
    return report


if __name__ == "__main__":
    main()
