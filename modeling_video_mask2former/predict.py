"""`video-mask2former predict`: segment and track the instances of a video; YouTubeVIS results and an overlay video."""

import argparse
import json
import os
import sys

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedConfig

from .evaluation.inference import load_model_and_processor
from .modeling_video_mask2former import VideoMask2FormerForVideoInstanceSegmentation
from .visualization import write_overlay_video
from .windowed import iter_video_frames, probe_video, segment_clip, segment_video_windowed


HELP = "Segment and track the instances of a video (file or frame folder): results.json and an overlay video."

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
FRAME_DIRECTORY_FPS = 6.0  # YouTube-VIS frame folders hold every 5th frame of 30 fps videos


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model folder or Hub id")
    parser.add_argument("--video", required=True, help="video file, or folder of frame images sorted by name")
    parser.add_argument(
        "--output-dir", default="predictions", help="where results.json and overlay.mp4 go (default: ./predictions)"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), help="defaults to cuda when available")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32")
    parser.add_argument(
        "--compile", action="store_true", help="run the model through torch.compile (slow first call, then faster)"
    )
    parser.add_argument(
        "--window",
        type=_positive_int,
        help="frames per window for long videos (windowed mode, bounded memory); default: the whole video as one "
        "clip, exactly as the original",
    )
    parser.add_argument(
        "--overlap", type=_positive_int, default=4, help="frames shared by consecutive windows (default: 4)"
    )
    parser.add_argument("--top-k", type=_positive_int, help="tracks kept (per window); default: config.test_top_k")
    parser.add_argument("--min-size", type=_positive_int, help="shortest edge after resizing (default: processor's)")
    parser.add_argument("--video-id", type=int, default=1, help="video_id of the result records (default: 1)")
    parser.add_argument(
        "--fps", type=_positive_float, help="overlay frame rate; default: the video's, 6 for frame folders"
    )
    parser.add_argument("--gif", action="store_true", help="also write overlay.gif")


def label_to_category_id(config: PreTrainedConfig) -> dict[int, int]:
    """Dataset category id of each label: `config.label_to_category_id` when the config has one, else `label + 1`."""
    mapping = getattr(config, "label_to_category_id", None)
    if mapping is None:
        return {label: label + 1 for label in range(config.num_labels)}
    items = mapping.items() if isinstance(mapping, dict) else enumerate(mapping)
    return {int(label): int(category_id) for label, category_id in items}


def predict(args: argparse.Namespace) -> int:
    """Runs the subcommand; bad inputs raise `OSError` or `ValueError` naming the file or frame at fault."""
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but CUDA is not available.")
    if args.window is not None and args.overlap >= args.window:
        raise ValueError(f"--overlap ({args.overlap}) must be smaller than --window ({args.window}).")
    info = probe_video(args.video)
    try:
        model, video_processor = load_model_and_processor(
            args.model, device, DTYPES[args.dtype], args.min_size, compile=args.compile
        )
    except OSError as error:
        raise OSError(f"Cannot load a model from {args.model!r}: {str(error).splitlines()[0]}") from error
    if not isinstance(model, VideoMask2FormerForVideoInstanceSegmentation):
        raise ValueError(f"{args.model!r} holds a {type(model).__name__}, not a Video Mask2Former model.")
    top_k = args.top_k or model.config.test_top_k

    frames = tqdm(iter_video_frames(args.video), total=info.num_frames, desc="decoding", unit="frame")
    inference = tqdm(total=info.num_frames, desc="inference", unit="frame")
    with frames, inference:
        if args.window is None:
            clip = list(frames)
            tracks = segment_clip(model, video_processor, clip, top_k)
            inference.update(len(clip))
            del clip
        else:
            tracks = segment_video_windowed(
                model, video_processor, frames, args.window, args.overlap, top_k, on_window=inference.update
            )

    category_ids = label_to_category_id(model.config)
    records = [
        {
            "video_id": args.video_id,
            "score": track["score"],
            "category_id": category_ids[track["label"]],
            "segmentations": track["segmentations"],
        }
        for track in tracks
    ]
    os.makedirs(args.output_dir, exist_ok=True)
    results_path = os.path.join(args.output_dir, "results.json")
    with open(results_path, "w") as handle:
        json.dump(records, handle)
    print(f"results: {results_path} ({len(records)} tracks over {inference.n} frames)")

    fps = args.fps or info.fps or FRAME_DIRECTORY_FPS
    for name in ("overlay.mp4", "overlay.gif") if args.gif else ("overlay.mp4",):
        path = os.path.join(args.output_dir, name)
        write_overlay_video(path, iter_video_frames(args.video), tracks, model.config.id2label, fps)
        print(f"overlay: {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    """`predict`, with input errors reported as one line and exit code 2."""
    try:
        return predict(args)
    except (OSError, ValueError) as error:
        print(f"video-mask2former predict: error: {error}", file=sys.stderr)
        return 2
