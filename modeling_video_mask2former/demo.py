"""`video-mask2former demo`: the whole job offline in about a minute on CPU, with a small model shipped in the package.

Without arguments: generates a few synthetic YouTube-VIS videos of coloured shapes (seed `DEMO_SEED`, never used for
training), segments and tracks their objects with the demo model (`demo_model/`, trained by
`benchmarks/train_demo_model.py` with `video-mask2former train`), and writes the overlay video, the YouTube-VIS
results and the official AP table against the synthetic ground truth. `--video` runs `predict` on your own video and
`--model` uses any converted checkpoint instead.
"""

import argparse
import json
import sys
import time
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import torch

from .data.synthetic import generate_synthetic_ytvis
from .evaluation.command import format_table
from .evaluation.inference import load_model_and_processor
from .evaluation.ytvis_eval import evaluate_ytvis
from .predict import label_to_category_id, predict
from .results import encode_masks
from .visualization import write_overlay_video
from .windowed import iter_video_frames, segment_clip


HELP = "Run the demo offline: synthetic videos, the shipped demo model, an overlay video, results.json, the AP table."

DEMO_MODEL_DIR = Path(__file__).resolve().parent / "demo_model"
DEMO_SEED = 7  # the demo model is trained on seed 0 and evaluated on seed 1 (benchmarks/train_demo_model.py)
NUM_DEMO_VIDEOS = 6
DEMO_FRAME_SIZE = (180, 240)  # one of the training sizes; one size for all videos, so they play as one overlay video
OVERLAY_FPS = 4.0


@dataclass
class DemoResult:
    """What the synthetic demo wrote (paths) and its AP/AR (`None` when the model's labels are not the shapes)."""

    annotations: Path
    results: Path
    overlay: Path
    ap_table: Path | None
    stats: dict[str, float] | None
    num_tracks: int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output-dir",
        default="video-mask2former-demo",
        help="where everything goes (default: ./video-mask2former-demo)",
    )
    parser.add_argument("--video", help="your own video file or frame folder, instead of the synthetic videos")
    parser.add_argument(
        "--model", default=str(DEMO_MODEL_DIR), help="model folder or Hub id (default: the demo model in the package)"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), help="defaults to cuda when available")
    parser.add_argument(
        "--score-threshold",
        type=float,
        default=0.5,
        help="tracks drawn in the synthetic overlay (results.json keeps all of them; default: 0.5)",
    )


def _stack_tracks(videos: list[list[dict]], lengths: list[int], size: tuple[int, int]) -> list[dict]:
    """The tracks of consecutive videos as tracks of one video: empty masks on the frames of the other videos."""
    empty = encode_masks(np.zeros((1, *size), dtype=bool))[0]
    stacked, start = [], 0
    for tracks, length in zip(videos, lengths):
        after = sum(lengths) - start - length
        for track in tracks:
            stacked.append(track | {"segmentations": [empty] * start + track["segmentations"] + [empty] * after})
        start += length
    return stacked


def run_synthetic_demo(
    model_name_or_path: str | Path,
    output_dir: str | Path,
    device: str = "cpu",
    score_threshold: float = 0.5,
) -> DemoResult:
    """
    Generates the demo videos into `<output_dir>/synthetic/`, runs the model on each (whole video as one clip, as
    `predict`), and writes `results.json`, `overlay.mp4` (tracks scoring at least `score_threshold`; the videos one
    after the other) and, when the model's labels are the synthetic categories, `ap.txt` / `ap.json`.
    """
    try:
        model, video_processor = load_model_and_processor(str(model_name_or_path), device, torch.float32)
    except OSError as error:
        raise OSError(f"Cannot load a model from {str(model_name_or_path)!r}: {str(error).splitlines()[0]}") from error
    category_ids = label_to_category_id(model.config)
    output_dir = Path(output_dir)
    annotations = generate_synthetic_ytvis(
        output_dir / "synthetic", NUM_DEMO_VIDEOS, seed=DEMO_SEED, frame_sizes=(DEMO_FRAME_SIZE,), split="valid"
    )
    ground_truth = json.loads(annotations.read_text())
    frame_dirs = [
        annotations.parent / "JPEGImages" / Path(video["file_names"][0]).parent for video in ground_truth["videos"]
    ]

    records, video_tracks, lengths = [], [], []
    for video, frame_dir in zip(ground_truth["videos"], frame_dirs):
        frames = list(iter_video_frames(frame_dir))
        tracks = segment_clip(model, video_processor, frames, model.config.test_top_k)
        records += [
            {
                "video_id": video["id"],
                "score": track["score"],
                "category_id": category_ids[track["label"]],
                "segmentations": track["segmentations"],
            }
            for track in tracks
        ]
        video_tracks.append([track for track in tracks if track["score"] >= score_threshold])
        lengths.append(len(frames))
    results = output_dir / "results.json"
    results.write_text(json.dumps(records))

    overlay = output_dir / "overlay.mp4"
    frames = chain.from_iterable(iter_video_frames(frame_dir) for frame_dir in frame_dirs)
    tracks = _stack_tracks(video_tracks, lengths, DEMO_FRAME_SIZE)
    write_overlay_video(overlay, frames, tracks, model.config.id2label, OVERLAY_FPS)

    categories = [category["name"] for category in ground_truth["categories"]]
    ap_table, ap_json = output_dir / "ap.txt", output_dir / "ap.json"
    if [model.config.id2label[label] for label in range(model.config.num_labels)] != categories:
        ap_table.unlink(missing_ok=True)  # from an earlier run
        ap_json.unlink(missing_ok=True)
        return DemoResult(annotations, results, overlay, None, None, len(records))
    evaluation = evaluate_ytvis(annotations, records)
    ap_table.write_text(format_table(evaluation, per_category=True) + "\n")
    ap_json.write_text(json.dumps(evaluation.stats | {"per_category_ap": evaluation.per_category_ap}))
    return DemoResult(annotations, results, overlay, ap_table, evaluation.stats, len(records))


def run(args: argparse.Namespace) -> int:
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        print("video-mask2former demo: error: --device cuda was asked for but CUDA is not available.", file=sys.stderr)
        return 2
    if args.video is not None:
        print(f"Running {args.model} on {args.video}")
        predict_args = argparse.Namespace(
            model=args.model,
            video=args.video,
            output_dir=args.output_dir,
            device=device,
            dtype="float32",
            compile=False,
            window=None,
            overlap=4,
            top_k=None,
            min_size=None,
            video_id=1,
            fps=None,
            gif=False,
        )
        try:
            return predict(predict_args)
        except (OSError, ValueError) as error:
            print(f"video-mask2former demo: error: {error}", file=sys.stderr)
            return 2

    start = time.perf_counter()
    print(f"Generating {NUM_DEMO_VIDEOS} synthetic videos (seed {DEMO_SEED}) and running {args.model} on {device}")
    try:
        result = run_synthetic_demo(args.model, args.output_dir, device, args.score_threshold)
    except (OSError, ValueError) as error:
        print(f"video-mask2former demo: error: {error}", file=sys.stderr)
        return 2
    print(f"videos and ground truth: {result.annotations.parent}/JPEGImages, {result.annotations}")
    print(f"results: {result.results} ({result.num_tracks} tracks)")
    print(f"overlay: {result.overlay} (tracks scoring >= {args.score_threshold})")
    if result.stats is None:
        print("AP: not computed: the model's labels are not the synthetic categories")
    else:
        print(f"AP table: {result.ap_table}")
        print(result.ap_table.read_text().rstrip())
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0
