"""`video-mask2former push`: upload a model folder to the Hugging Face Hub in one commit, ready for Hub users.

The uploaded folder is rebuilt from the model folder with `save_model_folder`: weights, `config.json` with `auto_map`
and the `video-instance-segmentation` pipeline, the custom-code files, the video processor, and the model card
(`README.md`, with its usage code naming the repo; a card is written when the folder has none). Other files of the
model folder (training state, checkpoints) are not uploaded.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

from huggingface_hub import HfApi, ModelCard
from transformers import AutoVideoProcessor

from .model_card import folder_model_card, set_model_id
from .modeling_video_mask2former import VideoMask2FormerForVideoInstanceSegmentation
from .publishing import save_model_folder
from .video_processing_video_mask2former import VideoMask2FormerVideoProcessor


HELP = "Upload a model folder to the Hub in one commit: weights, video processor, custom code, pipeline, model card."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model folder (from convert, train or the demo)")
    parser.add_argument("--repo-id", required=True, help="Hub repository, e.g. your-name/video-mask2former-r50")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--commit-message", default="Upload Video Mask2Former", help="message of the commit")
    parser.add_argument(
        "--license",
        default="other",
        help="license of the card written for a folder without README.md (default: other)",
    )
    parser.add_argument(
        "--dry-run",
        metavar="DIR",
        help="write the folder that would be uploaded to DIR (new or empty) and list its files; upload nothing",
    )


def prepare_upload(
    model_dir: str | os.PathLike, repo_id: str, output_dir: str | os.PathLike, license: str = "other"
) -> list[str]:
    """Writes the folder to upload for `model_dir` into `output_dir`; returns its files, sorted, relative paths."""
    model = VideoMask2FormerForVideoInstanceSegmentation.from_pretrained(model_dir)
    try:
        video_processor = AutoVideoProcessor.from_pretrained(model_dir)
    except OSError:
        video_processor = VideoMask2FormerVideoProcessor(
            size={"shortest_edge": model.config.test_min_size, "longest_edge": model.config.test_max_size}
        )
    save_model_folder(model, video_processor, output_dir)
    card_path = Path(model_dir) / "README.md"
    card = ModelCard.load(card_path) if card_path.is_file() else folder_model_card(model.config, license)
    set_model_id(card, repo_id).save(Path(output_dir) / "README.md")
    return sorted(path.relative_to(output_dir).as_posix() for path in Path(output_dir).rglob("*") if path.is_file())


def push(args: argparse.Namespace) -> int:
    if not Path(args.model).is_dir():
        raise FileNotFoundError(f"--model {args.model!r} is not a folder.")
    if args.dry_run is not None:
        if Path(args.dry_run).exists() and any(Path(args.dry_run).iterdir()):
            raise FileExistsError(f"--dry-run {args.dry_run!r} is not empty.")
        files = prepare_upload(args.model, args.repo_id, args.dry_run, args.license)
        print(f"Would upload {len(files)} files of {args.dry_run} to {args.repo_id} in one commit:")
        print("\n".join(f"  {name}" for name in files))
        return 0
    with tempfile.TemporaryDirectory() as staging:
        files = prepare_upload(args.model, args.repo_id, staging, args.license)
        api = HfApi()
        repo = api.create_repo(args.repo_id, private=args.private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo.repo_id, folder_path=staging, commit_message=args.commit_message)
    print(f"Uploaded {len(files)} files in one commit: {commit.commit_url}")
    return 0


def run(args: argparse.Namespace) -> int:
    """`push`, with bad inputs reported as one line and exit code 2."""
    try:
        return push(args)
    except (OSError, ValueError) as error:
        print(f"video-mask2former push: error: {error}", file=sys.stderr)
        return 2
