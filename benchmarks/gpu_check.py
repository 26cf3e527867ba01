"""A short check for a GPU machine: inference in float32 and under bfloat16 autocast, and bf16 tracks against fp32.

For each model (the R50 and Swin-T presets, random weights), one clip of `--frames` synthetic frames of 360x640 goes
through the video processor, the model and the post-processing of the top-10 tracks to 720x1280, in float32 and under
`torch.autocast(dtype=torch.bfloat16)`: median time of `--repeats` runs after a warm-up, and peak device memory. Then
every fp32 track must be found in the bf16 top-k with the same query and label (`--min-agreement` of them), with a
mask IoU of at least `--min-iou` on average (`--min-track-iou` for each). It also times the pixel decoder's deformable
attention, the `embedding_bag` version against transformers' `grid_sample` one, at the size of a 16-frame clip, and
checks parity on the device: the tiny reference models, converted from their original checkpoints in `tests/fixtures`,
must give the original's class and mask logits within the CPU tolerances (1e-4 and 5e-4) in float32 with TF32 off;
the differences with PyTorch's default TF32 convolutions are reported too. The script exits with status 1 when a
check fails. It takes about a minute on one GPU.

    python benchmarks/gpu_check.py --output gpu_check.json
    python benchmarks/gpu_check.py --device cpu --dry-run   # a tiny model on CPU: exercises the script itself
"""

import argparse
import itertools
import statistics
import sys

import torch
from common import (
    DEFAULT_MODELS,
    REPO,
    build_video_model,
    describe,
    environment,
    peak_rss_mib,
    synthetic_frames,
    timed,
    video_config,
    write_report,
)


def tiny_config():
    """A tiny random configuration for `--dry-run`."""
    from transformers import ResNetConfig

    from modeling_video_mask2former import VideoMask2FormerConfig

    backbone = ResNetConfig(
        embedding_size=8,
        hidden_sizes=[16, 16, 32, 32],
        depths=[1, 1, 1, 1],
        layer_type="bottleneck",
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    return VideoMask2FormerConfig(
        backbone_config=backbone,
        feature_size=32,
        mask_feature_size=32,
        hidden_dim=32,
        num_attention_heads=2,
        dim_feedforward=32,
        encoder_layers=2,
        encoder_feedforward_dim=32,
        decoder_layers=4,
        num_queries=8,
        num_labels=5,
    )


def run_precision(model, processor, frames, target_size, device, bfloat16: bool, repeats: int) -> tuple[dict, list]:
    """Times the pipeline in one precision; returns the measurements and the last run's tracks."""
    synchronize = torch.cuda.synchronize if device.type == "cuda" else None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def run():
        inputs = processor(videos=[frames], return_tensors="pt")
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16),
        ):
            outputs = model(inputs["pixel_values_videos"].to(device))
        (tracks,) = processor.post_process_video_instance_segmentation(
            outputs, target_sizes=[target_size], resized_sizes=inputs["resized_sizes"]
        )
        return tracks

    runs, tracks = timed(run, repeats, synchronize)
    seconds = statistics.median(run["wall"] for run in runs)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else peak_rss_mib()
    return {
        "seconds": seconds,
        "frames_per_second": len(frames) / seconds,
        "peak_memory_mib": peak,
    }, tracks


def compare_tracks(reference: list[dict], candidate: list[dict]) -> dict:
    """Matches each reference track to the candidate track with the same query and label; mask IoU of the matches."""
    candidates = {(track["query_index"], track["label"]): track for track in candidate}
    ious = []
    for track in reference:
        match = candidates.get((track["query_index"], track["label"]))
        if match is not None:
            intersection = (track["masks"] & match["masks"]).sum().item()
            union = (track["masks"] | match["masks"]).sum().item()
            ious.append(intersection / union if union else 1.0)
    return {
        "agreement": len(ious) / len(reference),
        "mean_iou": statistics.mean(ious) if ious else 0.0,
        "min_iou": min(ious, default=0.0),
    }


def compare_deformable_attention(device: torch.device, batch_size: int, shapes: list[tuple[int, int]]) -> dict:
    """Times both deformable attention implementations (median of 5 calls) and their largest difference."""
    from transformers.models.mask2former.modeling_mask2former import (
        multi_scale_deformable_attention as reference,
    )

    from modeling_video_mask2former.deformable_attention import (
        multi_scale_deformable_attention,
    )

    generator = torch.Generator().manual_seed(0)
    sequence_length = sum(height * width for height, width in shapes)
    value = torch.randn(batch_size, sequence_length, 8, 32, generator=generator).to(device)
    locations = torch.rand(batch_size, sequence_length, 8, len(shapes), 4, 2, generator=generator).to(device)
    attention = torch.rand(batch_size, sequence_length, 8, len(shapes), 4, generator=generator).softmax(-1).to(device)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else None
    result = {}
    with torch.inference_mode():
        for name, function in (
            ("embedding_bag", multi_scale_deformable_attention),
            ("grid_sample", reference),
        ):
            runs, result[name] = timed(
                lambda function=function: function(value, shapes, locations, attention),
                5,
                synchronize,
            )
            result[f"{name}_ms"] = 1000 * statistics.median(run["wall"] for run in runs)
    result["max_difference"] = (result.pop("embedding_bag") - result.pop("grid_sample")).abs().max().item()
    return result


def check_parity(device: torch.device) -> list[dict]:
    """Largest differences of the tiny reference models' final logits on `device` from the original's, with TF32
    convolutions and matrix products off and at PyTorch's defaults."""
    import tempfile

    from safetensors.torch import load_file

    from modeling_video_mask2former import VideoMask2FormerForVideoInstanceSegmentation
    from modeling_video_mask2former.conversion.convert import convert_checkpoint

    tiny = REPO / "tests" / "fixtures" / "tiny"
    results = []
    defaults = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    for name, checkpoint in (
        ("tiny_r50", "tiny_r50.pkl"),
        ("tiny_swin", "tiny_swin.pth"),
    ):
        with tempfile.TemporaryDirectory() as folder:
            convert_checkpoint(tiny / checkpoint, tiny / f"{name}_config.yaml", folder)
            model = VideoMask2FormerForVideoInstanceSegmentation.from_pretrained(folder).eval().to(device)
        for case in ("t3_96x128", "t2_100x130"):
            reference = load_file(tiny / f"{name}_{case}.safetensors")
            for tf32 in (False, True):
                torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
                with torch.inference_mode():
                    outputs = model(reference["backbone_input"][None].to(device))
                results.append(
                    {
                        "model": name,
                        "case": case,
                        "tf32": tf32,
                        "class_logits": (outputs.class_queries_logits.cpu() - reference["decoder.pred_logits"])
                        .abs()
                        .max()
                        .item(),
                        "mask_logits": (outputs.masks_queries_logits.cpu() - reference["decoder.pred_masks"])
                        .abs()
                        .max()
                        .item(),
                    }
                )
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = defaults
    return results


def check_model(name: str, num_frames: int, args: argparse.Namespace, device: torch.device) -> dict:
    from modeling_video_mask2former import VideoMask2FormerVideoProcessor

    config = tiny_config() if args.dry_run else video_config(name)
    model = build_video_model(config).to(device)
    height, width = args.frame_size
    frames = synthetic_frames(num_frames, height, width)
    processor = VideoMask2FormerVideoProcessor(size={"shortest_edge": min(height, width), "longest_edge": 1333})
    fp32, reference = run_precision(model, processor, frames, args.target_size, device, False, args.repeats)
    bf16, candidate = run_precision(model, processor, frames, args.target_size, device, True, args.repeats)
    comparison = compare_tracks(reference, candidate)
    failures = []
    if comparison["agreement"] < args.min_agreement:
        failures.append(f"only {comparison['agreement']:.0%} of the fp32 tracks are in the bf16 top-k")
    if comparison["mean_iou"] < args.min_iou:
        failures.append(f"mean mask IoU {comparison['mean_iou']:.3f} < {args.min_iou}")
    if comparison["min_iou"] < args.min_track_iou:
        failures.append(f"a track's mask IoU is {comparison['min_iou']:.3f} < {args.min_track_iou}")
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {
        "model": "tiny" if args.dry_run else name,
        "frames": num_frames,
        "fp32": fp32,
        "bf16": bf16,
        **comparison,
        "failures": failures,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="a tiny model on small frames (checks the script)",
    )
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--frames", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--min-agreement", type=float, default=0.8)
    parser.add_argument("--min-iou", type=float, default=0.9)
    parser.add_argument("--min-track-iou", type=float, default=0.5)
    parser.add_argument("--output", help="write the results as JSON here")
    args = parser.parse_args(argv)
    args.frame_size, args.target_size = ([64, 96], (96, 128)) if args.dry_run else ([360, 640], (720, 1280))
    if args.dry_run:
        args.models, args.frames, args.repeats = args.models[:1], [2], 1
    device = torch.device(args.device)

    report = {"environment": environment(), "settings": vars(args), "results": []}
    if device.type == "cuda":
        report["environment"]["device"] = torch.cuda.get_device_name(device)
    print(
        describe(report["environment"]) + f"; device {report['environment'].get('device', device)}",
        flush=True,
    )
    print(
        f"{'model':<22} {'T':>3} {'fp32 s':>7} {'bf16 s':>7} {'speed-up':>8} {'fp32 MiB':>9} {'bf16 MiB':>9} "
        f"{'agree':>6} {'mean IoU':>8} {'min IoU':>8}  status"
    )
    for name, num_frames in itertools.product(args.models, args.frames):
        result = check_model(name, num_frames, args, device)
        report["results"].append(result)
        fp32, bf16 = result["fp32"], result["bf16"]
        print(
            f"{result['model']:<22} {num_frames:>3} {fp32['seconds']:>7.3f} {bf16['seconds']:>7.3f} "
            f"{fp32['seconds'] / bf16['seconds']:>7.2f}x {fp32['peak_memory_mib']:>9.0f} "
            f"{bf16['peak_memory_mib']:>9.0f} {result['agreement']:>6.0%} {result['mean_iou']:>8.3f} "
            f"{result['min_iou']:>8.3f}  {'; '.join(result['failures']) or 'ok'}",
            flush=True,
        )
    height, width = (-(-size // 32) * 32 for size in args.frame_size)  # padded to a multiple of 32
    shapes = [(height // stride, width // stride) for stride in (32, 16, 8)]
    attention = compare_deformable_attention(device, 16, shapes)
    report["deformable_attention"] = attention
    failed = attention["max_difference"] > 1e-4
    print(
        f"deformable attention on 16 frames: embedding_bag {attention['embedding_bag_ms']:.1f} ms, "
        f"grid_sample {attention['grid_sample_ms']:.1f} ms, max difference {attention['max_difference']:.2e}"
        + ("  FAILED" if failed else "")
    )
    report["parity"] = [] if args.dry_run else check_parity(device)
    for row in report["parity"]:
        row["failed"] = not row["tf32"] and (row["class_logits"] > 1e-4 or row["mask_logits"] > 5e-4)
        failed |= row["failed"]
        print(
            f"parity {row['model']} {row['case']} TF32 {'on ' if row['tf32'] else 'off'}: class logits "
            f"{row['class_logits']:.2e}, mask logits {row['mask_logits']:.2e}" + ("  FAILED" if row["failed"] else "")
        )
    write_report(args.output, report)
    return 1 if failed or any(result["failures"] for result in report["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
