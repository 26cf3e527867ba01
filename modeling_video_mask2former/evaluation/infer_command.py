"""`video-mask2former infer`: results of a whole YouTubeVIS/OVIS split for the evaluation servers.

Resumable (rerun the same command after an interruption) and shardable over processes: on GPUs
`accelerate launch --num_processes N -m modeling_video_mask2former.cli infer ...`, on CPUs
`torchrun --nproc_per_node N -m modeling_video_mask2former.cli infer ... --device cpu` (`accelerate launch --cpu`
starts a single process).
"""

import argparse
import sys

import torch
from accelerate import PartialState

from ..data.categories import CATEGORY_FILES, load_categories
from .command import format_table
from .inference import (
    BARRIER_TIMEOUT,
    RESULTS_FILE_NAME,
    SUBMISSION_FILE_NAME,
    infer_split,
    label_to_category_ids,
    load_model_and_processor,
    load_split,
)
from .ytvis_eval import evaluate_ytvis


HELP = "Run a model over a whole YouTubeVIS/OVIS split: results.json (and the CodaLab submission.zip), resumable."

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model folder or Hub id")
    parser.add_argument("--annotations", help="the split's annotation json (valid/test files have no annotations)")
    parser.add_argument("--frames", help="the folder the json's file_names are relative to (JPEGImages)")
    parser.add_argument("--dataset", metavar="PARQUET_DIR", help="instead: a folder of one split's Parquet shards")
    parser.add_argument("--output-dir", required=True, help="results.json, submission.zip and the partial/ journal")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="defaults to cuda when available")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32")
    parser.add_argument(
        "--compile", action="store_true", help="run the model through torch.compile (slow first call, then faster)"
    )
    parser.add_argument("--top-k", type=_positive_int, help="tracks kept per video (default: config.test_top_k)")
    parser.add_argument("--min-size", type=_positive_int, help="shortest frame edge after resizing")
    parser.add_argument(
        "--dataset-categories",
        choices=tuple(CATEGORY_FILES),
        help="the model's labels are this dataset's categories in id order (default: the config's id2label names); "
        "either way labels are matched to the split's categories by name",
    )
    parser.add_argument("--zip", action="store_true", help="also write the CodaLab archive submission.zip")
    parser.add_argument("--evaluate", action="store_true", help="print the 12 AP/AR numbers (needs annotations)")


def infer(args: argparse.Namespace) -> int:
    if (args.dataset is None) == (args.annotations is None) or (args.annotations is None) != (args.frames is None):
        raise ValueError("Give either --annotations and --frames, or --dataset.")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but CUDA is not available.")
    state = PartialState(cpu=args.device == "cpu", timeout=BARRIER_TIMEOUT)
    with state.main_process_first():
        split = load_split(args.annotations, args.frames, args.dataset)
    if args.evaluate and not split.has_annotations:
        raise ValueError(
            "--evaluate needs a split with annotations (the valid/test ground truth is private: submit the zip)."
        )
    device = torch.device("cpu") if args.device == "cpu" else state.device
    model, video_processor = load_model_and_processor(
        args.model, device, DTYPES[args.dtype], args.min_size, compile=args.compile
    )
    label_names = model.config.id2label
    if args.dataset_categories is not None:
        names = [category["name"] for category in load_categories(args.dataset_categories)]
        if len(names) != model.config.num_labels:
            raise ValueError(
                f"{args.dataset_categories} has {len(names)} categories but the model has "
                f"{model.config.num_labels} labels."
            )
        label_names = dict(enumerate(names))
    label_to_category_id = label_to_category_ids(label_names, split.categories)

    records = infer_split(
        model, video_processor, split, args.output_dir, label_to_category_id, args.top_k, args.zip, state
    )
    if records is None:
        return 0
    print(f"results: {args.output_dir}/{RESULTS_FILE_NAME} ({len(records)} records, {len(split.video_ids)} videos)")
    if args.zip:
        print(f"submission: {args.output_dir}/{SUBMISSION_FILE_NAME}")
    if args.evaluate:
        print(format_table(evaluate_ytvis(split.ground_truth(with_annotations=True), records), per_category=False))
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return infer(args)
    except (OSError, ValueError) as error:
        print(f"video-mask2former infer: error: {error}", file=sys.stderr)
        return 2
