"""`video-mask2former convert`: original checkpoint + config (or a model-zoo preset) -> `save_pretrained` folder."""

import argparse
import pickle
import sys

from .convert import convert_checkpoint
from .presets import PRESETS


HELP = "Convert an original (detectron2) Video Mask2Former checkpoint into a transformers model folder."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        metavar="PATH_OR_URL",
        help="original .pkl / .pth / .safetensors checkpoint, local or http(s) (default: the preset's model-zoo URL)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--config", metavar="YAML", help="original yaml config (with its _BASE_ files) or a merged dump"
    )
    source.add_argument("--preset", metavar="NAME", help="a model-zoo entry (see --list-presets)")
    parser.add_argument("--output-dir", metavar="DIR", help="folder to write (must not exist or be empty)")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a config key, e.g. MODEL.MASK_FORMER.NHEADS=4",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --output-dir")
    parser.add_argument(
        "--allow-unused",
        action="store_true",
        help="report checkpoint keys the model has no place for instead of failing",
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="skip reloading the written folder to compare tensors"
    )
    parser.add_argument("--list-presets", action="store_true", help="print the model-zoo presets and exit")


def _list_presets() -> None:
    for preset in PRESETS.values():
        print(
            f"{preset.name:<22} {preset.backbone:<28} AP {preset.reported_ap:<5} {preset.dataset:<22} {preset.config}"
        )


def run(args: argparse.Namespace) -> int:
    if args.list_presets:
        _list_presets()
        return 0
    if args.preset is None and args.config is None:
        print("error: give --config (with --checkpoint) or --preset", file=sys.stderr)
        return 2
    if args.preset is not None and args.preset not in PRESETS:
        print(f"error: unknown preset {args.preset!r} (see --list-presets)", file=sys.stderr)
        return 2
    if args.preset is None and args.checkpoint is None:
        print("error: --checkpoint is required with --config", file=sys.stderr)
        return 2
    if args.output_dir is None:
        print("error: --output-dir is required", file=sys.stderr)
        return 2
    try:
        report = convert_checkpoint(
            args.checkpoint,
            args.preset or args.config,
            args.output_dir,
            overrides=args.override,
            verify=not args.no_verify,
            strict=not args.allow_unused,
            overwrite=args.overwrite,
        )
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, pickle.UnpicklingError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
        return 2
    print(report.summary(), file=sys.stderr)
    return 0
