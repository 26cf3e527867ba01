"""Trains the demo model shipped in `modeling_video_mask2former/demo_model/` with `video-mask2former train`, on CPU.

    python benchmarks/train_demo_model.py                # writes modeling_video_mask2former/demo_model/
    python benchmarks/train_demo_model.py --steps 20 --output-dir /tmp/demo_model   # a quick check of the recipe

The recipe: synthetic YouTube-VIS videos of coloured shapes (`generate_synthetic_ytvis`, training seed
`TRAIN_SEED`), a small randomly initialised ResNet model (`common.small_resnet_config`), trained by the `train`
command with the original recipe (AdamW, backbone lr x0.1, lr x0.1 at 2/3 of the steps, gradient clipping 0.01)
except for a higher learning rate, as nothing is pre-trained. The trained model is evaluated with the official YouTube-VIS AP on held-out
synthetic videos (seed `EVAL_SEED`) and on the demo's own videos (seed `demo.DEMO_SEED`); both numbers go into the
model card (`README.md`) written next to the weights, with this recipe.
"""

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from common import small_resnet_config
from modeling_video_mask2former import VideoMask2FormerConfig
from modeling_video_mask2former.data import generate_synthetic_ytvis
from modeling_video_mask2former.demo import DEMO_MODEL_DIR, DEMO_SEED, NUM_DEMO_VIDEOS, run_synthetic_demo
from modeling_video_mask2former.model_card import DemoTraining, demo_model_card
from modeling_video_mask2former.training import command


TRAIN_SEED = 0
EVAL_SEED = 1
DEMO_FILES = ("config.json", "model.safetensors", "video_preprocessor_config.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps")
    parser.add_argument("--train-videos", type=int, default=1000)
    parser.add_argument("--eval-videos", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=4, help="clips of 2 frames per step")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--size", type=int, default=128, help="shortest edge at test time")
    parser.add_argument("--threads", type=int, default=1, help="1: reproducible, and fast on a shared machine")
    parser.add_argument("--output-dir", default=str(DEMO_MODEL_DIR), help="where the demo model goes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        train_json = generate_synthetic_ytvis(root / "train", args.train_videos, seed=TRAIN_SEED)
        eval_json = generate_synthetic_ytvis(root / "valid", args.eval_videos, seed=EVAL_SEED, split="valid")
        names = [category["name"] for category in json.loads(train_json.read_text())["categories"]]
        small_resnet_config(len(names), args.size, train_num_points=1024).to_json_file(root / "config.json")
        min_sizes = [args.size - 16, args.size, args.size + 16]

        train_arguments = [
            *("--annotations", str(train_json), "--frames", str(root / "train" / "JPEGImages")),
            *("--eval-annotations", str(eval_json), "--eval-frames", str(root / "valid" / "JPEGImages")),
            *("--config", str(root / "config.json")),
            *("--min-sizes", *(str(size) for size in min_sizes)),
            *("--max-size", str(2 * min_sizes[-1])),
            *("--output_dir", str(root / "run"), "--max_steps", str(args.steps)),
            *("--learning_rate", str(args.learning_rate), "--per_device_train_batch_size", str(args.batch_size)),
            *("--dataloader_num_workers", "0", "--save_strategy", "no", "--report_to", "none"),
            *("--logging_steps", str(max(1, args.steps // 20)), "--seed", "0", "--disable_tqdm", "true"),
        ]
        command_parser = argparse.ArgumentParser()
        command.add_arguments(command_parser)
        torch.manual_seed(0)
        start = time.perf_counter()
        if command.run(command_parser.parse_args(train_arguments)) != 0:
            raise SystemExit("training failed")
        minutes = (time.perf_counter() - start) / 60
        held_out = json.loads((root / "run" / "eval_results.json").read_text())
        state = json.loads((root / "run" / "trainer_state.json").read_text())

        output_dir = Path(args.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        for name in DEMO_FILES:
            shutil.copyfile(root / "run" / name, output_dir / name)

    with tempfile.TemporaryDirectory() as demo_dir:
        demo = run_synthetic_demo(output_dir, demo_dir)
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    training = DemoTraining(
        steps=state["global_step"],
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        min_sizes=min_sizes,
        train_videos=args.train_videos,
        train_seed=TRAIN_SEED,
        eval_videos=args.eval_videos,
        eval_seed=EVAL_SEED,
        demo_videos=NUM_DEMO_VIDEOS,
        demo_seed=DEMO_SEED,
        minutes=round(minutes, 1),
        threads=args.threads,
        first_loss=round(losses[0], 2),
        last_loss=round(losses[-1], 2),
        held_out={key.removeprefix("eval_"): value for key, value in held_out.items() if key.startswith("eval_A")},
        demo=demo.stats,
    )
    demo_model_card(VideoMask2FormerConfig.from_pretrained(output_dir), training).save(output_dir / "README.md")
    print(
        f"{training.steps} steps in {minutes:.1f} min; held-out AP {100 * training.held_out['AP']:.1f} "
        f"({args.eval_videos} videos), demo AP {100 * demo.stats['AP']:.1f}; wrote {output_dir}"
    )


if __name__ == "__main__":
    main()
