"""Train a small Video Mask2Former on synthetic YouTube-VIS videos on CPU and report held-out YouTube-VIS AP.

    python benchmarks/train_synthetic.py --steps 400 --output benchmarks/train_synthetic.json

Synthetic videos (coloured shapes that move, occlude each other, enter and leave) are written to a temporary folder:
a training split and a held-out split with other seeds. A small randomly initialised ResNet model is trained with
[`VideoMask2FormerTrainer`] (the original recipe: AdamW, backbone lr x0.1, step schedule at 2/3, gradient clipping
0.01; only the learning rate is raised, as nothing is pre-trained), then evaluated on the held-out split with the
official YouTube-VIS AP. Prints the number of steps, the minutes and the AP, and writes them as JSON. Training stops
early, with the steps done reported, when `--max-minutes` run out.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from common import small_resnet_config
from modeling_video_mask2former import VideoMask2FormerForVideoInstanceSegmentation
from modeling_video_mask2former.data import generate_synthetic_ytvis, load_youtubevis
from modeling_video_mask2former.training import (
    VideoMask2FormerDataCollator,
    VideoMask2FormerTrainer,
    YouTubeVISClipDataset,
    YouTubeVISEvaluator,
    YouTubeVISVideoDataset,
    default_training_arguments,
    load_training_videos,
)
from modeling_video_mask2former.video_processing_video_mask2former import VideoMask2FormerVideoProcessor


FRAME_SIZES = ((96, 128), (120, 160))


class TimeBudget(TrainerCallback):
    """Stops training once `minutes` have passed (the steps done are reported)."""

    def __init__(self, minutes: float):
        self.deadline = time.perf_counter() + 60 * minutes

    def on_step_end(self, args, state, control, **kwargs):
        if time.perf_counter() > self.deadline:
            control.should_training_stop = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=400, help="optimizer steps")
    parser.add_argument("--train-videos", type=int, default=200)
    parser.add_argument("--eval-videos", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=4, help="clips of 2 frames per step")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--size", type=int, default=64, help="shortest edge of training clips and test videos")
    parser.add_argument("--max-minutes", type=float, default=8.5, help="stop training after this long")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="benchmarks/train_synthetic.json", help="JSON file to write")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        train_json = generate_synthetic_ytvis(
            root / "train", args.train_videos, seed=args.seed, frame_sizes=FRAME_SIZES
        )
        eval_json = generate_synthetic_ytvis(
            root / "valid", args.eval_videos, seed=args.seed + 1000, frame_sizes=FRAME_SIZES, split="valid"
        )
        videos = load_training_videos(train_json, root / "train" / "JPEGImages")
        names = videos.features["annotations"].feature["category"].names
        processor = VideoMask2FormerVideoProcessor(size={"shortest_edge": args.size, "longest_edge": 2 * args.size})

        torch.manual_seed(args.seed)
        model = VideoMask2FormerForVideoInstanceSegmentation(
            small_resnet_config(len(names), args.size, train_num_points=512)
        )
        training_args = default_training_arguments(
            str(root / "output"),
            max_steps=args.steps,
            learning_rate=args.learning_rate,
            per_device_train_batch_size=args.batch_size,
            dataloader_num_workers=0,
            logging_steps=max(1, args.steps // 20),
            save_strategy="no",
            seed=args.seed,
            disable_tqdm=True,
        )
        trainer = VideoMask2FormerTrainer(
            model=model,
            args=training_args,
            train_dataset=YouTubeVISClipDataset(videos, min_sizes=(args.size,), max_size=2 * args.size, seed=args.seed),
            eval_dataset=YouTubeVISVideoDataset(load_youtubevis(eval_json, root / "valid" / "JPEGImages")),
            data_collator=VideoMask2FormerDataCollator(processor),
            video_evaluator=YouTubeVISEvaluator(eval_json, processor),
            callbacks=[TimeBudget(args.max_minutes)],
        )
        start = time.perf_counter()
        train_output = trainer.train()
        train_minutes = (time.perf_counter() - start) / 60
        start = time.perf_counter()
        metrics = trainer.evaluate()
        eval_minutes = (time.perf_counter() - start) / 60

    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    result = {
        "steps": trainer.state.global_step,
        "max_steps": args.steps,
        "size": args.size,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "train_videos": args.train_videos,
        "eval_videos": args.eval_videos,
        "threads": args.threads,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_minutes": round(train_minutes, 2),
        "eval_minutes": round(eval_minutes, 2),
        "first_logged_loss": losses[0],
        "last_logged_loss": losses[-1],
        "train_loss": train_output.training_loss,
        "eval": {key.removeprefix("eval_"): value for key, value in metrics.items() if key.startswith("eval_A")},
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"steps {trainer.state.global_step}  train {train_minutes:.1f} min  eval {eval_minutes:.1f} min  "
        f"AP {100 * result['eval']['AP']:.1f}  AP50 {100 * result['eval']['AP50']:.1f}  (written to {args.output})"
    )


if __name__ == "__main__":
    main()
