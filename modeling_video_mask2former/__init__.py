"""Video Mask2Former for Hugging Face transformers.

Importing the package registers the model with transformers' Auto classes (in-process); saved folders also carry
`auto_map` entries so that `from_pretrained(..., trust_remote_code=True)` works without this package.
"""

from transformers import AutoConfig, AutoModel, AutoModelForUniversalSegmentation, AutoVideoProcessor

from .configuration_video_mask2former import VideoMask2FormerConfig
from .modeling_video_mask2former import (
    VideoMask2FormerForVideoInstanceSegmentation,
    VideoMask2FormerForVideoInstanceSegmentationOutput,
    VideoMask2FormerModel,
    VideoMask2FormerModelOutput,
    VideoMask2FormerPreTrainedModel,
)
from .pipeline_video_mask2former import VideoInstanceSegmentationPipeline, register_video_instance_segmentation_pipeline
from .video_processing_video_mask2former import VideoMask2FormerVideoProcessor


AutoConfig.register(VideoMask2FormerConfig.model_type, VideoMask2FormerConfig, exist_ok=True)
AutoModel.register(VideoMask2FormerConfig, VideoMask2FormerForVideoInstanceSegmentation, exist_ok=True)
AutoModelForUniversalSegmentation.register(
    VideoMask2FormerConfig, VideoMask2FormerForVideoInstanceSegmentation, exist_ok=True
)
VideoMask2FormerConfig.register_for_auto_class()
VideoMask2FormerForVideoInstanceSegmentation.register_for_auto_class("AutoModel")
AutoVideoProcessor.register(VideoMask2FormerConfig, VideoMask2FormerVideoProcessor, exist_ok=True)
VideoMask2FormerVideoProcessor.register_for_auto_class("AutoVideoProcessor")
register_video_instance_segmentation_pipeline()

__all__ = [
    "VideoInstanceSegmentationPipeline",
    "VideoMask2FormerConfig",
    "VideoMask2FormerForVideoInstanceSegmentation",
    "VideoMask2FormerForVideoInstanceSegmentationOutput",
    "VideoMask2FormerModel",
    "VideoMask2FormerModelOutput",
    "VideoMask2FormerPreTrainedModel",
    "VideoMask2FormerVideoProcessor",
]
