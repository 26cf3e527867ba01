"""Wall time and peak memory of the YouTubeVIS evaluator on synthetic full-size data.

Defaults: 300 videos x 10 predictions x 36 frames at 720x1280, 3 ground-truth tracks per video, masks are moving
ellipses encoded to compressed RLE with pycocotools. Predictions are jittered copies of ground-truth tracks (some with
another category) and unrelated ellipses.

    python benchmarks/bench_evaluation.py --output bench_evaluation.json
"""

import argparse
import json
import platform
import resource
import time

import numpy as np
from pycocotools import mask as mask_utils

from modeling_video_mask2former.evaluation import STAT_NAMES, YTVISeval, load_ground_truth, load_predictions


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ellipse_rle(height: int, width: int, center_y: float, center_x: float, radius_y: float, radius_x: float) -> dict:
    """Compressed RLE (str counts) of a filled ellipse, built column by column without a dense mask."""
    columns = np.arange(width)
    half_heights = radius_y * np.sqrt(np.clip(1 - ((columns + 0.5 - center_x) / radius_x) ** 2, 0, None))
    starts = np.clip(np.ceil(center_y - half_heights - 0.5), 0, height).astype(np.int64)
    ends = np.clip(np.floor(center_y + half_heights - 0.5) + 1, 0, height).astype(np.int64)
    filled = ends > starts
    boundaries = np.stack([columns[filled] * height + starts[filled], columns[filled] * height + ends[filled]], 1)
    boundaries = boundaries.ravel()
    # A run that ends at the bottom of a column and goes on at the top of the next one is a single run.
    touching = np.flatnonzero(boundaries[1:-1:2] == boundaries[2::2])
    boundaries = np.delete(boundaries, np.concatenate([2 * touching + 1, 2 * touching + 2]))
    counts = np.diff(np.concatenate([[0], boundaries, [height * width]]))
    counts = counts[:-1] if counts[-1] == 0 else counts
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts.tolist()}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def ellipse_track(rng: np.random.Generator, height: int, width: int, frames: int, base=None) -> list[tuple]:
    """(center_y, center_x, radius_y, radius_x) per frame, None where absent; a jittered copy of `base` if given."""
    if base is not None:
        scale = rng.uniform(0.85, 1.15, size=2)
        shift = rng.normal(0, 0.03, size=2) * [height, width]
        return [
            None if b is None else (b[0] + shift[0], b[1] + shift[1], b[2] * scale[0], b[3] * scale[1]) for b in base
        ]
    radius = rng.uniform(0.03, 0.3, size=2) * [height, width]
    start = rng.uniform(0, 1, size=2) * [height, width]
    velocity = rng.normal(0, 0.01, size=2) * [height, width]
    first, last = sorted(rng.integers(0, frames + 1, size=2))
    last = max(last, first + 1)
    return [(*(start + velocity * frame), *radius) if first <= frame < last else None for frame in range(frames)]


def encode_track(track: list, height: int, width: int, keep_absent: bool) -> list:
    """Predictions encode every frame (an empty mask where absent); ground truth keeps `null`."""
    empty = None if keep_absent else ellipse_rle(height, width, 0, 0, 0, 1)
    return [empty if ellipse is None else ellipse_rle(height, width, *ellipse) for ellipse in track]


def synthetic_data(args) -> tuple[dict, list]:
    rng = np.random.default_rng(args.seed)
    height, width, frames = args.height, args.width, args.frames
    videos, annotations, predictions = [], [], []
    for video_id in range(1, args.videos + 1):
        videos.append({"id": video_id, "height": height, "width": width, "length": frames})
        ground_truth_tracks = []
        for _ in range(args.gt_per_video):
            track = ellipse_track(rng, height, width, frames)
            category_id = int(rng.integers(1, args.categories + 1))
            segmentations = encode_track(track, height, width, keep_absent=True)
            areas = [None if rle is None else float(mask_utils.area(rle)) for rle in segmentations]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "video_id": video_id,
                    "category_id": category_id,
                    "iscrowd": 0,
                    "segmentations": segmentations,
                    "areas": areas,
                }
            )
            ground_truth_tracks.append((track, category_id))
        for _ in range(args.predictions_per_video):
            if rng.uniform() < 0.7:
                base, category_id = ground_truth_tracks[rng.integers(len(ground_truth_tracks))]
                track = ellipse_track(rng, height, width, frames, base=base)
                if rng.uniform() < 0.3:
                    category_id = int(rng.integers(1, args.categories + 1))
            else:
                track, category_id = (
                    ellipse_track(rng, height, width, frames),
                    int(rng.integers(1, args.categories + 1)),
                )
            predictions.append(
                {
                    "video_id": video_id,
                    "score": float(rng.uniform()),
                    "category_id": category_id,
                    "segmentations": encode_track(track, height, width, keep_absent=False),
                }
            )
    categories = [{"id": index, "name": f"class{index}"} for index in range(1, args.categories + 1)]
    return {"videos": videos, "categories": categories, "annotations": annotations}, predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=300)
    parser.add_argument("--predictions-per-video", type=int, default=10)
    parser.add_argument("--gt-per-video", type=int, default=3)
    parser.add_argument("--frames", type=int, default=36)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--categories", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="write the figures to this JSON file")
    args = parser.parse_args()

    rss_at_start = peak_rss_mib()
    start = time.perf_counter()
    annotations, predictions = synthetic_data(args)
    generation_s = time.perf_counter() - start
    rss_after_generation = peak_rss_mib()
    rle_mib = sum(len(rle["counts"]) for record in predictions for rle in record["segmentations"]) / 2**20

    timings = {}
    start = time.perf_counter()
    ground_truth = load_ground_truth(annotations)
    timings["load_ground_truth_s"] = time.perf_counter() - start
    tracks = load_predictions(predictions, ground_truth)
    timings["load_predictions_s"] = time.perf_counter() - start - sum(timings.values())
    evaluator = YTVISeval(ground_truth, tracks)
    evaluator.evaluate()
    timings["evaluate_s"] = time.perf_counter() - start - sum(timings.values())
    evaluator.accumulate()
    evaluator.summarize()
    timings["accumulate_summarize_s"] = time.perf_counter() - start - sum(timings.values())
    total_s = time.perf_counter() - start

    figures = {
        "videos": args.videos,
        "predictions_per_video": args.predictions_per_video,
        "gt_per_video": args.gt_per_video,
        "frames": args.frames,
        "frame_size": [args.height, args.width],
        "seed": args.seed,
        "prediction_rle_mib": round(rle_mib, 1),
        "generation_s": round(generation_s, 2),
        "evaluation_wall_s": round(total_s, 2),
        **{name: round(value, 2) for name, value in timings.items()},
        "peak_rss_after_imports_mib": round(rss_at_start, 1),
        "peak_rss_after_generation_mib": round(rss_after_generation, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "stats": dict(zip(STAT_NAMES, (round(float(value), 6) for value in evaluator.stats))),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    for name, value in figures.items():
        print(f"{name}: {value}")
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(figures, handle, indent=2)


if __name__ == "__main__":
    main()
