"""Peak memory of windowed and exact full-mode inference against video length: windowed stays flat, full grows.

Writes 360p (640x360) synthetic MP4s of each length, then runs every (mode, length) in a fresh process and reports
its peak RSS (`resource.getrusage`), the peak growth of RSS over the loaded model, the RSS after each window, and the
size of the RLE results, the one part of windowed mode that grows. Full mode's peaks are fitted with a line: its slope
is the memory per added frame, and where it crosses `--memory-gib` is the longest clip full mode runs in that much
memory. With `--tracemalloc`, the runs report the peak of Python/numpy allocations instead (torch's own allocations
are not traced; tracing perturbs RSS, so it is a separate pass).

`--model` is `tiny` (a small random model) or a preset name (random weights at the real size), e.g.

    python benchmarks/bench_windowed_memory.py --model ytvis_2019_R50 --min-size 360 --full-lengths 16 32 64 128 \
        --output benchmarks/windowed_memory_r50.json
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import av
import numpy as np


REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 640, 360


def write_synthetic_video(path: Path, num_frames: int, fps: int = 30) -> None:
    """Two boxes moving over a gradient, H.264 at 640x360, written frame by frame."""
    rows, columns = np.mgrid[:HEIGHT, :WIDTH]
    background = np.stack([columns * 255 // WIDTH, rows * 255 // HEIGHT, np.full_like(rows, 80)], -1).astype(np.uint8)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(num_frames):
            frame = background.copy()
            left = (3 * index) % (WIDTH - 120)
            frame[60:200, left : left + 120] = (240, 220, 40)
            frame[220:340, WIDTH - 140 - left // 2 : WIDTH - 40 - left // 2] = (30, 200, 240)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def current_rss_mib() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def child(args: argparse.Namespace) -> None:
    """One measurement, in its own process so that the peak RSS is this run's."""
    import torch

    sys.path.insert(0, str(REPO))
    from modeling_video_mask2former import VideoMask2FormerVideoProcessor
    from modeling_video_mask2former.windowed import iter_video_frames, segment_clip, segment_video_windowed

    torch.set_num_threads(args.threads)
    if args.model == "tiny":
        from tests.test_modeling_video_mask2former import VideoMask2FormerModelTester, build_model

        model = build_model(VideoMask2FormerModelTester(batch_size=1))
    else:
        from common import build_video_model, video_config

        model = build_video_model(video_config(args.model))
    processor = VideoMask2FormerVideoProcessor(size={"shortest_edge": args.min_size, "longest_edge": 1333})
    segment_clip(model, processor, [np.zeros((HEIGHT, WIDTH, 3), np.uint8)] * 2, top_k=10)  # warm-up
    baseline = current_rss_mib()

    window_rss = []

    def record_rss(_: int) -> None:
        window_rss.append(current_rss_mib())

    if args.tracemalloc:
        tracemalloc.start()
    start = time.perf_counter()
    if args.mode == "windowed":
        frames = iter_video_frames(args.video)
        tracks = segment_video_windowed(
            model, processor, frames, args.window, args.overlap, top_k=10, on_window=record_rss
        )
    else:
        tracks = segment_clip(model, processor, list(iter_video_frames(args.video)), top_k=10)
    result = {"seconds": round(time.perf_counter() - start, 1), "tracks": len(tracks)}
    result["rle_kib"] = round(sum(len(rle["counts"]) for track in tracks for rle in track["segmentations"]) / 1024, 1)
    if args.tracemalloc:
        result["tracemalloc_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        result["peak_rss_mib"] = round(peak, 1)
        result["peak_rss_growth_mib"] = round(peak - baseline, 1)
        result["window_rss_mib"] = [round(rss) for rss in window_rss]
    print(json.dumps(result))


def summarize(results: list[dict], memory_gib: float) -> dict:
    """Full mode: least-squares line of peak RSS against frames (MiB per added frame, longest clip in `memory_gib`).
    Windowed mode: spread of its peaks, largest over smallest."""
    summary, lines = {}, []
    full = [(r["frames"], r["peak_rss_mib"]) for r in results if r["mode"] == "full"]
    if len(full) >= 2:
        slope, intercept = np.polyfit(*zip(*full), 1)
        longest = int((memory_gib * 1024 - intercept) / slope)
        summary["full"] = {"mib_per_frame": round(slope, 1), "intercept_mib": round(intercept), "longest_clip": longest}
        lines.append(
            f"full mode: {slope:.1f} MiB per added frame (peak = {intercept:.0f} + {slope:.1f}·T MiB), "
            f"longest clip in {memory_gib:g} GiB: about {longest} frames"
        )
    windowed = [(r["frames"], r["peak_rss_mib"]) for r in results if r["mode"] == "windowed"]
    if len(windowed) >= 2:
        peaks = [peak for _, peak in windowed]
        spread = max(peaks) / min(peaks)
        summary["windowed"] = {"peak_spread": round(spread, 3), "frames": [frames for frames, _ in windowed]}
        lines.append(
            f"windowed mode: peak RSS {min(peaks):.0f}-{max(peaks):.0f} MiB from {windowed[0][0]} to "
            f"{windowed[-1][0]} frames (largest/smallest {spread:.3f})"
        )
    return {**summary, "lines": lines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--full-lengths", type=int, nargs="*", default=[64, 128], help="lengths also run in full mode")
    parser.add_argument("--model", default="tiny", help="`tiny` or a preset name such as ytvis_2019_R50")
    parser.add_argument("--memory-gib", type=float, default=24, help="memory for the longest-clip estimate")
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--overlap", type=int, default=4)
    parser.add_argument("--min-size", type=int, default=180, help="shortest edge the frames are resized to")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tracemalloc", action="store_true", help="measure traced allocations instead of RSS")
    parser.add_argument("--output", default="windowed_memory.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("windowed", "full"), help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    runs = [("windowed", length) for length in args.lengths] + [("full", length) for length in args.full_lengths]
    results = []
    with tempfile.TemporaryDirectory() as directory:
        for mode, length in runs:
            video = Path(directory) / f"synthetic_{length}.mp4"
            if not video.exists():
                write_synthetic_video(video, length)
            command = [sys.executable, __file__, "--child", "--mode", mode, "--video", str(video)]
            for option in ("model", "window", "overlap", "min_size", "threads"):
                command += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
            command += ["--tracemalloc"] if args.tracemalloc else []
            completed = subprocess.run(command, capture_output=True, text=True, check=True, env={**os.environ})
            result = {"mode": mode, "frames": length, **json.loads(completed.stdout.strip().splitlines()[-1])}
            results.append(result)
            if args.tracemalloc:
                memory = f"tracemalloc peak {result['tracemalloc_peak_mib']:6.1f} MiB"
            else:
                window_rss = result["window_rss_mib"]
                memory = (
                    f"peak RSS {result['peak_rss_mib']:7.1f} MiB (+{result['peak_rss_growth_mib']:6.1f} over the "
                    "loaded model)"
                )
                if window_rss:
                    memory += f", RSS after each window {min(window_rss)}-{max(window_rss)} MiB"
            print(
                f"{mode:>8} {length:4d} frames: {memory}, RLE {result['rle_kib']:6.1f} KiB, {result['tracks']} "
                f"tracks, {result['seconds']:.1f} s",
                flush=True,
            )
    settings = {key: getattr(args, key) for key in ("model", "window", "overlap", "min_size", "threads", "tracemalloc")}
    summary = summarize(results, args.memory_gib) if not args.tracemalloc else {}
    for line in summary.get("lines", []):
        print(line)
    report = {"frame_size": [HEIGHT, WIDTH], **settings, "results": results, "summary": summary}
    Path(args.output).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
