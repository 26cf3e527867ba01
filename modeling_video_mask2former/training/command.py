"""`video-mask2former train`: the original recipe on YouTube-VIS style data, resumable, with held-out AP."""

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

from transformers import HfArgumentParser, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from ..configuration_video_mask2former import VideoMask2FormerConfig
from ..conversion import PRESETS, config_from_detectron2, load_detectron2_config
from ..conversion.detectron2_config import video_processor_kwargs_from_detectron2
from ..data import YTVISFormatError, load_youtubevis
from ..evaluation import EvaluationInputError
from ..modeling_video_mask2former import VideoMask2FormerForVideoInstanceSegmentation
from ..video_processing_video_mask2former import VideoMask2FormerVideoProcessor
from .collator import VideoMask2FormerDataCollator
from .dataset import YouTubeVISClipDataset, YouTubeVISVideoDataset, load_training_videos
from .metrics import YouTubeVISEvaluator
from .optimization import VideoMask2FormerTrainer, default_training_kwargs


logger = logging.getLogger(__name__)

HELP = (
    "Train Video Mask2Former on YouTube-VIS style data with the original recipe (AdamW, backbone lr x0.1, step "
    "schedule, gradient clipping 0.01); resumable; optional held-out AP."
)
TRAINING_ARGUMENT_NAMES = {field.name for field in dataclasses.fields(TrainingArguments) if field.init}


def _training_arguments_parser() -> HfArgumentParser:
    parser = HfArgumentParser(TrainingArguments, add_help=False)
    parser.set_defaults(**default_training_kwargs())
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    source = data.add_mutually_exclusive_group(required=True)
    source.add_argument("--annotations", metavar="JSON", help="training annotation file (with --frames)")
    source.add_argument("--dataset", metavar="DIR", help="folder of train-*.parquet shards (write_parquet_shards)")
    data.add_argument("--frames", metavar="DIR", help="frame folder of --annotations (the split's JPEGImages)")
    data.add_argument("--eval-annotations", metavar="JSON", help="held-out annotation file to report AP on")
    data.add_argument("--eval-frames", metavar="DIR", help="frame folder of --eval-annotations")
    data.add_argument("--num-frames", type=int, help="frames per training clip (default: the config's, 2)")
    data.add_argument(
        "--min-sizes", type=int, nargs="+", default=[360, 480], help="shortest-edge sizes drawn per clip"
    )
    data.add_argument("--max-size", type=int, default=1333, help="longest-edge cap of training clips")

    model = parser.add_argument_group("model")
    init = model.add_mutually_exclusive_group(required=True)
    init.add_argument(
        "--model", metavar="PATH", help="model folder to start from (converted from a video or COCO checkpoint)"
    )
    init.add_argument(
        "--config",
        metavar="PRESET_OR_JSON",
        help=f"random initialisation from a preset ({', '.join(name for name in PRESETS if name.startswith('ytvis'))}"
        ", ...) or a config.json",
    )

    schedule = parser.add_argument_group("schedule")
    schedule.add_argument(
        "--lr-milestones",
        type=int,
        nargs="+",
        help="steps at which the lr is multiplied by 0.1 (default: 2/3 of them)",
    )
    schedule.add_argument("--backbone-multiplier", type=float, default=0.1, help="backbone learning-rate factor")
    parser.add_argument(
        "--resume-from-checkpoint",
        nargs="?",
        const="last",
        metavar="CHECKPOINT",
        help="resume from a checkpoint folder; without a value, from the last checkpoint in --output-dir",
    )

    training = parser.add_argument_group(
        "training arguments",
        "Any transformers.TrainingArguments field, e.g. --learning_rate 1e-4 --per_device_train_batch_size 2 "
        "--save_steps 500 --eval_strategy steps --eval_steps 1000; defaults are the original recipe.",
    )
    for action in _training_arguments_parser()._actions:
        if action.dest in ("help", "resume_from_checkpoint"):
            continue
        if action.dest == "output_dir":
            action.required = True
        training._add_action(action)


def _load_config(name_or_path: str) -> tuple[VideoMask2FormerConfig, dict]:
    """A config and video processor arguments from a preset name or a config json / folder."""
    if name_or_path in PRESETS:
        detectron2_config = load_detectron2_config(PRESETS[name_or_path].config_path)
        return config_from_detectron2(detectron2_config), video_processor_kwargs_from_detectron2(detectron2_config)
    if not os.path.exists(name_or_path):
        raise FileNotFoundError(f"--config {name_or_path!r} is neither a preset nor a file or folder")
    config = VideoMask2FormerConfig.from_pretrained(name_or_path)
    return config, {"size": {"shortest_edge": config.test_min_size, "longest_edge": config.test_max_size}}


def _load_model(
    args: argparse.Namespace, names: list[str]
) -> tuple[VideoMask2FormerForVideoInstanceSegmentation, VideoMask2FormerVideoProcessor]:
    """The model to train, with a classifier for `names`, and its video processor."""
    labels = {
        "num_labels": len(names),
        "id2label": dict(enumerate(names)),
        "label2id": {n: i for i, n in enumerate(names)},
    }
    if args.config is not None:
        config, processor_kwargs = _load_config(args.config)
        config.update(labels)
        return VideoMask2FormerForVideoInstanceSegmentation(config), VideoMask2FormerVideoProcessor(**processor_kwargs)

    config = VideoMask2FormerConfig.from_pretrained(args.model)
    if config.num_labels == len(names):
        if list(config.id2label.values()) != names:
            logger.warning(f"{args.model} has labels {list(config.id2label.values())}; training them as {names}.")
        model = VideoMask2FormerForVideoInstanceSegmentation.from_pretrained(args.model, **labels)
    else:
        logger.warning(
            f"{args.model} has {config.num_labels} labels; its classifier is re-initialised for {len(names)}."
        )
        model = VideoMask2FormerForVideoInstanceSegmentation.from_pretrained(
            args.model, ignore_mismatched_sizes=True, **labels
        )
    if (Path(args.model) / "video_preprocessor_config.json").is_file():
        processor = VideoMask2FormerVideoProcessor.from_pretrained(args.model)
    else:
        processor = VideoMask2FormerVideoProcessor(
            size={"shortest_edge": config.test_min_size, "longest_edge": config.test_max_size}
        )
    return model, processor


def _resume_checkpoint(value: str | None, output_dir: str) -> str | None:
    if value != "last":
        return value
    checkpoint = get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
    if checkpoint is None:
        raise FileNotFoundError(f"--resume-from-checkpoint: no checkpoint-* folder in {output_dir}")
    return checkpoint


def run(args: argparse.Namespace) -> int:
    if args.annotations is not None and args.frames is None:
        print("video-mask2former train: error: --annotations needs --frames", file=sys.stderr)
        return 2
    if (args.eval_annotations is None) != (args.eval_frames is None):
        print("video-mask2former train: error: give both --eval-annotations and --eval-frames", file=sys.stderr)
        return 2
    training_args = TrainingArguments(
        **{name: getattr(args, name) for name in TRAINING_ARGUMENT_NAMES if name != "resume_from_checkpoint"}
    )
    try:
        resume_from_checkpoint = _resume_checkpoint(args.resume_from_checkpoint, training_args.output_dir)
        videos = load_training_videos(args.annotations, args.frames, parquet_dir=args.dataset)
        names = videos.features["annotations"].feature["category"].names
        model, processor = _load_model(args, names)
        eval_dataset = evaluator = None
        if args.eval_annotations is not None:
            eval_videos = load_youtubevis(args.eval_annotations, args.eval_frames, require_annotations=True)
            eval_names = eval_videos.features["annotations"].feature["category"].names
            if eval_names != names:
                raise YTVISFormatError(
                    f"{args.eval_annotations}: categories {eval_names} differ from the training categories {names}."
                )
            eval_dataset = YouTubeVISVideoDataset(eval_videos)
            evaluator = YouTubeVISEvaluator(args.eval_annotations, processor, top_k=model.config.test_top_k)
    except (YTVISFormatError, EvaluationInputError, FileNotFoundError) as error:
        print(f"video-mask2former train: error: {error}", file=sys.stderr)
        return 2

    if args.num_frames is not None:
        model.config.num_frames = args.num_frames
    train_dataset = YouTubeVISClipDataset(
        videos,
        num_frames=model.config.num_frames,
        sampling_frame_range=model.config.sampling_frame_range,
        min_sizes=args.min_sizes,
        max_size=args.max_size,
        seed=training_args.data_seed if training_args.data_seed is not None else training_args.seed,
    )
    trainer = VideoMask2FormerTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=VideoMask2FormerDataCollator(processor),
        processing_class=processor,
        backbone_multiplier=args.backbone_multiplier,
        lr_milestones=args.lr_milestones,
        video_evaluator=evaluator,
    )
    train_result = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    trainer.save_model()
    trainer.save_state()
    trainer.save_metrics("train", train_result.metrics)
    if evaluator is not None:
        metrics = trainer.evaluate()
        trainer.save_metrics("eval", metrics)
        if trainer.is_world_process_zero():
            print(json.dumps(metrics))
    return 0
