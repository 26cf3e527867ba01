"""Time per frame of the work around the model: decoding, pre-processing, post-processing and RLE encoding.

On a synthetic H.264 MP4 of `--frames` frames at `--video-size` (720x1280 by default), each stage is timed separately:

- `decode`: PyAV decoding to `(H, W, 3)` uint8 RGB frames (the video processor's backend for files);
- `preprocess`: the video processor on those frames: resize to a 360 short side (PIL bilinear, per frame), normalise,
  pad to a multiple of 32;
- `postprocess`: `post_process_video_instance_segmentation` on model-shaped random logits (100 queries, 40 classes,
  stride-4 masks of the padded size): top-10 tracks, each upsampled, cropped and resized back to the video size;
- `rle`: compressed RLE of those tracks' masks, one per frame and track, as in the YouTube-VIS results.

    python benchmarks/bench_processing.py --output benchmarks/results/processing.json
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import torch
from common import describe, environment, parse_size, synthetic_frames, write_report


def write_video(path: str | Path, frames: np.ndarray, fps: int = 30) -> None:
    """`(T, H, W, 3)` uint8 frames to an H.264 MP4."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def decode_video(path: str | Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def random_outputs(num_frames: int, padded_size: tuple[int, int], num_queries: int = 100, num_labels: int = 40):
    """Model-shaped outputs: class logits `(1, Q, K + 1)` and smooth mask logits `(1, Q, T, Hp/4, Wp/4)`."""
    generator = torch.Generator().manual_seed(0)
    height, width = padded_size[0] // 4, padded_size[1] // 4
    coarse = torch.randn(num_queries, num_frames, height // 8, width // 8, generator=generator)
    masks = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    return SimpleNamespace(
        class_queries_logits=torch.randn(1, num_queries, num_labels + 1, generator=generator),
        masks_queries_logits=masks[None],
    )


def time_stages(video_path: str | Path, short_side: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per run of each stage (see the module docstring), `repeats` runs after a warm-up."""
    from modeling_video_mask2former import VideoMask2FormerVideoProcessor
    from modeling_video_mask2former.results import encode_masks

    processor = VideoMask2FormerVideoProcessor(size={"shortest_edge": short_side, "longest_edge": 1333})
    seconds = {"decode": [], "preprocess": [], "postprocess": [], "rle": []}
    for run in range(repeats + 1):
        start = time.perf_counter()
        frames = decode_video(video_path)
        decoded = time.perf_counter()
        inputs = processor(videos=[frames], return_tensors="pt")
        preprocessed = time.perf_counter()
        outputs = random_outputs(len(frames), inputs["pixel_values_videos"].shape[-2:])
        start_post = time.perf_counter()
        (tracks,) = processor.post_process_video_instance_segmentation(
            outputs, target_sizes=inputs["original_sizes"], resized_sizes=inputs["resized_sizes"]
        )
        postprocessed = time.perf_counter()
        for track in tracks:
            encode_masks(track["masks"])
        end = time.perf_counter()
        if run > 0:
            for name, value in zip(
                seconds, (decoded - start, preprocessed - decoded, postprocessed - start_post, end - postprocessed)
            ):
                seconds[name].append(value)
    return seconds


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--video-size", type=parse_size, default=[720, 1280], help="HxW of the synthetic video")
    parser.add_argument("--short-side", type=int, default=360, help="shortest edge after resizing")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", help="write the results as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    report = {"environment": environment(args.threads), "settings": vars(args)}
    print(describe(report["environment"]), flush=True)
    with tempfile.TemporaryDirectory() as directory:
        video = Path(directory) / "synthetic.mp4"
        write_video(video, synthetic_frames(args.frames, *args.video_size))
        seconds = time_stages(video, args.short_side, args.repeats)
    report["ms_per_frame"] = {name: 1000 * statistics.median(runs) / args.frames for name, runs in seconds.items()}
    report["seconds"] = seconds
    print(f"{args.frames} frames of {args.video_size[0]}x{args.video_size[1]}, median of {args.repeats} runs")
    print(f"{'stage':<12} {'ms/frame':>9}")
    for name, value in report["ms_per_frame"].items():
        print(f"{name:<12} {value:>9.1f}")
    write_report(args.output, report)
    return report


if __name__ == "__main__":
    main()
