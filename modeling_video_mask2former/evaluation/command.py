"""`video-mask2former evaluate`: the official YouTubeVIS video AP/AR of a results json."""

import argparse
import json
import sys

from .records import EvaluationInputError
from .ytvis_eval import YTVISResult, evaluate_ytvis


HELP = "Evaluate YouTubeVIS/OVIS results with the official video AP/AR (12 numbers, -1 where nothing is evaluated)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--annotations",
        required=True,
        help="ground-truth json with annotations (valid/test ground truth is private: hold out part of train)",
    )
    parser.add_argument(
        "--predictions", required=True, help="results json: a list of {video_id, score, category_id, segmentations}"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object {AP, AP50, ..., ARl}")
    parser.add_argument("--per-category", action="store_true", help="also report AP per category ('AP-<name>')")


def format_table(result: YTVISResult, per_category: bool) -> str:
    """The 12 numbers, and optionally per-category AP, as an aligned two-column table."""
    rows = list(result.stats.items())
    if per_category:
        rows += [(f"AP-{name}", value) for name, value in result.per_category_ap.items()]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value:7.4f}" for name, value in rows)


def run(args: argparse.Namespace) -> int:
    try:
        result = evaluate_ytvis(args.annotations, args.predictions)
    except (EvaluationInputError, OSError) as error:
        print(f"video-mask2former evaluate: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        output = dict(result.stats)
        if args.per_category:
            output.update({f"AP-{name}": value for name, value in result.per_category_ap.items()})
        print(json.dumps(output))
    else:
        print(format_table(result, args.per_category))
    return 0
