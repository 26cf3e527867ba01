"""Training with transformers' `Trainer`: the original recipe, YouTube-VIS clip datasets and AP evaluation."""

from .collator import VideoMask2FormerDataCollator
from .dataset import YouTubeVISClipDataset, YouTubeVISVideoDataset, load_training_videos
from .metrics import YouTubeVISEvaluator
from .optimization import (
    VideoMask2FormerTrainer,
    default_training_arguments,
    default_training_kwargs,
    get_parameter_groups,
    get_step_schedule,
)


__all__ = [
    "VideoMask2FormerDataCollator",
    "VideoMask2FormerTrainer",
    "YouTubeVISClipDataset",
    "YouTubeVISEvaluator",
    "YouTubeVISVideoDataset",
    "default_training_arguments",
    "default_training_kwargs",
    "get_parameter_groups",
    "get_step_schedule",
    "load_training_videos",
]
