"""The `video-mask2former` command line: a thin dispatcher over subcommand modules.

Each subcommand module defines `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`.
"""

import argparse
import importlib
import sys


SUBCOMMANDS = {
    "convert": "modeling_video_mask2former.conversion.command",
    "evaluate": "modeling_video_mask2former.evaluation.command",
    "predict": "modeling_video_mask2former.predict",
    "infer": "modeling_video_mask2former.evaluation.infer_command",
    "train": "modeling_video_mask2former.training.command",
    "demo": "modeling_video_mask2former.demo",
    "push": "modeling_video_mask2former.push",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `command`, only that subcommand's module is imported (the others stay cheap to list)."""
    parser = argparse.ArgumentParser(prog="video-mask2former", description="Mask2Former for video instance segmentation.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, module_name in SUBCOMMANDS.items():
        if command not in (None, name):
            subparsers.add_parser(name)
            continue
        module = importlib.import_module(module_name)
        subparser = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(subparser)
        subparser.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    args = build_parser(command).parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
