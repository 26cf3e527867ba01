"""Saving a model folder that works with `pipeline(model=folder, trust_remote_code=True)` and `AutoVideoProcessor`."""

import os

from .modeling_video_mask2former import VideoMask2FormerForVideoInstanceSegmentation
from .pipeline_video_mask2former import (
    VideoInstanceSegmentationPipeline,
    register_video_instance_segmentation_pipeline,
)
from .video_processing_video_mask2former import VideoMask2FormerVideoProcessor


def save_model_folder(
    model: VideoMask2FormerForVideoInstanceSegmentation,
    video_processor: VideoMask2FormerVideoProcessor,
    save_directory: str | os.PathLike,
) -> None:
    """
    Saves `model` (weights, `config.json` with `auto_map` and `custom_pipelines`, custom code), the pipeline code and
    `video_processor` into `save_directory`. `Pipeline.save_pretrained` alone would leave the video processor out.
    Note that `model.config.custom_pipelines` is set on the given model, as `Pipeline.save_pretrained` does.
    """
    register_video_instance_segmentation_pipeline()
    pipeline = VideoInstanceSegmentationPipeline(model=model, video_processor=video_processor, device=model.device)
    pipeline.save_pretrained(save_directory)
    video_processor.save_pretrained(save_directory)


__all__ = ["save_model_folder"]
