"""Configuration of Video Mask2Former: the image Mask2Former configuration plus the video settings."""

from huggingface_hub.dataclasses import strict
from transformers import Mask2FormerConfig


@strict
class VideoMask2FormerConfig(Mask2FormerConfig):
    r"""
    Configuration of [`VideoMask2FormerModel`] and [`VideoMask2FormerForVideoInstanceSegmentation`].

    Every field of [`~transformers.Mask2FormerConfig`] keeps its meaning (backbone, pixel decoder, transformer
    decoder sizes, loss weights); a video model and the image model it is initialised from share them. The backbone
    is transformers' Swin or ResNet, built through `AutoBackbone` from `backbone_config`.

    num_frames (`int`, *optional*, defaults to 2):
        Frames per clip sampled for training (the original's `INPUT.SAMPLING_FRAME_NUM`). At inference a clip may
        have any number of frames.
    sampling_frame_range (`int`, *optional*, defaults to 20):
        Training clips are drawn within this many frames of a reference frame (`INPUT.SAMPLING_FRAME_RANGE`).
    test_top_k (`int`, *optional*, defaults to 10):
        Tracks kept per video at inference, chosen over all queries x classes (the original keeps 10).
    test_min_size (`int`, *optional*, defaults to 360):
        Shortest edge of frames at test time (`INPUT.MIN_SIZE_TEST`).
    test_max_size (`int`, *optional*, defaults to 1333):
        Longest edge cap at test time (`INPUT.MAX_SIZE_TEST`).

    Example:

    ```python
    >>> from modeling_video_mask2former import VideoMask2FormerConfig, VideoMask2FormerModel
    >>> config = VideoMask2FormerConfig(num_labels=40)
    >>> config.model_type
    'video_mask2former'
    ```
    """

    model_type = "video_mask2former"
    backbones_supported = ["swin", "resnet"]

    num_frames: int = 2
    sampling_frame_range: int = 20
    test_top_k: int = 10
    test_min_size: int = 360
    test_max_size: int = 1333


__all__ = ["VideoMask2FormerConfig"]
