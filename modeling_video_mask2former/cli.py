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
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="video-mask2former", description="Mask2Former for video instance segmentation.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        subparser = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(subparser)
        subparser.set_defaults(run=module.run)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
