"""Where inference time goes: `torch.profiler` on one forward of the model, optionally next to an older revision.

One clip of `--frames` synthetic 360x640 frames (padded to 384x640) goes through the model at a preset size (random
weights) after a warm-up call; the table lists the operators with the largest self CPU time, and, from a second
(unprofiled) call, the wall time spent in the model's main parts, each including what it calls: backbone, pixel
decoder and its deformable attention, transformer decoder and its masked attention and mask predictions. With `--baseline-rev REV`
the same is run, in a separate process, with the package as of git revision REV (e.g. the commit before the speed
work, whose pixel decoder used transformers' `grid_sample` deformable attention), so the largest costs before and
after can be compared.

    python benchmarks/profile_inference.py --baseline-rev 1bfa575 --output benchmarks/profile.json
"""

import argparse
import json
import time

import torch
from common import (
    build_video_model,
    describe,
    environment,
    parse_size,
    run_configurations,
    synthetic_frames,
    video_config,
    write_report,
)


def component_modules(model) -> dict[str, list[torch.nn.Module]]:
    """The modules making up each timed part of a Video Mask2Former model (the same at every revision)."""
    inner = model.model
    pixel_decoder, decoder = inner.pixel_level_module.decoder, inner.transformer_module.decoder
    return {
        "backbone": [inner.pixel_level_module.encoder],
        "pixel decoder": [pixel_decoder],
        "pixel decoder: deformable attention": [
            module
            for module in pixel_decoder.modules()
            if type(module).__name__.endswith("MultiscaleDeformableAttention")
        ],
        "transformer decoder": [inner.transformer_module],
        "transformer decoder: masked attention": [layer.cross_attn for layer in decoder.layers],
        "transformer decoder: mask predictions": [decoder.mask_predictor],
    }


def time_components(model, pixel_values: torch.Tensor) -> dict[str, float]:
    """Wall seconds spent in each part of `component_modules` during one forward (hooks, no profiler)."""
    seconds, starts, handles = {}, {}, []
    for name, modules in component_modules(model).items():
        seconds[name] = 0.0
        for module in modules:

            def start(*_, module=module):
                starts[id(module)] = time.perf_counter()

            def stop(*_, module=module, name=name):
                seconds[name] += time.perf_counter() - starts.pop(id(module))

            handles += [module.register_forward_pre_hook(start), module.register_forward_hook(stop)]
    model(pixel_values)
    for handle in handles:
        handle.remove()
    return seconds


def profile_configuration(spec: dict) -> dict:
    """Profiles one forward in this process; returns the top operators by self CPU time and the total."""
    from torch.profiler import ProfilerActivity, profile

    from modeling_video_mask2former import VideoMask2FormerVideoProcessor

    torch.set_num_threads(spec["threads"])
    model = build_video_model(video_config(spec["model"]))
    height, width = spec["frame_size"]
    processor = VideoMask2FormerVideoProcessor(size={"shortest_edge": min(height, width), "longest_edge": 1333})
    pixel_values = processor(videos=[synthetic_frames(spec["frames"], height, width)], return_tensors="pt")
    pixel_values = pixel_values["pixel_values_videos"]
    with torch.inference_mode():
        model(pixel_values)
        start = time.perf_counter()
        components = time_components(model, pixel_values)
        forward_seconds = time.perf_counter() - start
        start = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            model(pixel_values)
        seconds = time.perf_counter() - start
    events = profiler.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    top = sorted(events, key=lambda event: event.self_cpu_time_total, reverse=True)[: spec["top"]]
    return {
        **spec,
        "seconds": seconds,
        "forward_seconds": forward_seconds,
        "components": components,
        "self_cpu_seconds": total / 1e6,
        "operators": [
            {
                "name": event.key,
                "self_cpu_seconds": event.self_cpu_time_total / 1e6,
                "share": event.self_cpu_time_total / total,
                "calls": event.count,
            }
            for event in top
        ],
    }


def table(result: dict) -> list[str]:
    lines = [
        f"{result['source']}: {result['model']}, T={result['frames']}, one forward {result['forward_seconds']:.2f} s",
        f"  {'part':<48} {'wall s':>10} {'share':>6}",
    ]
    for name, seconds in result["components"].items():
        lines.append(f"  {name:<48} {seconds:>10.2f} {seconds / result['forward_seconds']:>6.1%}")
    lines += [
        f"  profiled forward {result['seconds']:.2f} s, self CPU time {result['self_cpu_seconds']:.2f} s",
        f"  {'operator':<48} {'self CPU s':>10} {'share':>6} {'calls':>6}",
    ]
    for operator in result["operators"]:
        lines.append(
            f"  {operator['name']:<48} {operator['self_cpu_seconds']:>10.2f} {operator['share']:>6.1%} "
            f"{operator['calls']:>6}"
        )
    return lines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ytvis_2019_R50", help="preset name or original yaml config")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--frame-size", type=parse_size, default=[360, 640])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=10, help="operators listed")
    parser.add_argument("--baseline-rev", help="also profile the package as of this git revision")
    parser.add_argument("--output", help="write the results as JSON here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(profile_configuration(json.loads(args.child))))
        return {}

    spec = {key: getattr(args, key) for key in ("model", "frames", "frame_size", "threads", "top")}
    report = {"environment": environment(args.threads), "settings": vars(args), "results": []}
    print(describe(report["environment"]), flush=True)
    report["results"] = run_configurations(__file__, [spec], lambda result: "\n".join(table(result)), args.baseline_rev)
    write_report(args.output, report)
    return report


if __name__ == "__main__":
    main()
