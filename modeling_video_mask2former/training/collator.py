"""Batching of training clips and of whole evaluation videos through the video processor."""

import torch
import torch.nn.functional as F

from ..video_processing_video_mask2former import VideoMask2FormerVideoProcessor


class VideoMask2FormerDataCollator:
    """
    Batches the items of [`YouTubeVISClipDataset`] (training) and [`YouTubeVISVideoDataset`] (evaluation), told apart
    by `video_id`, which only evaluation items have.

    - Training clips (`frames` `(T, 3, H, W)` uint8, `mask_labels` `(tracks, T, H, W)`, `class_labels` `(tracks,)`)
      are batched as the original's `ImageList.from_tensors`: normalised with the processor's mean/std on the 0-255
      scale ((123.675, 116.28, 103.53) / (58.395, 57.12, 57.375) by default) and zero-padded at the bottom/right to
      the largest clip of the batch rounded up to a multiple of 32; masks are zero-padded to the same size. No resize:
      the clips are already augmented. Returns `pixel_values_videos` `(batch, T, 3, Hp, Wp)` float32 and, as lists,
      `mask_labels` `(tracks, T, Hp, Wp)` and `class_labels`.
    - Evaluation videos (`frames` `(T, 3, H, W)` uint8, `video_id`) go through the processor's test-time pipeline
      (shortest-edge resize, normalisation, padding). Returns `pixel_values_videos`, `resized_sizes` and
      `original_sizes` `(batch, 2)` and `video_ids` `(batch,)`. Videos of a batch need the same number of frames, so
      evaluation runs one video per batch.

    Args:
        video_processor ([`VideoMask2FormerVideoProcessor`], *optional*):
            Supplies the test-time size, the mean, std and size divisor. Defaults to the original's values.
    """

    def __init__(self, video_processor: VideoMask2FormerVideoProcessor | None = None):
        self.video_processor = video_processor if video_processor is not None else VideoMask2FormerVideoProcessor()

    def __call__(self, examples: list[dict]) -> dict:
        videos = [example["frames"] for example in examples]
        if "video_id" in examples[0]:
            batch = self.video_processor(videos=videos, return_tensors="pt")
            return {
                "pixel_values_videos": batch["pixel_values_videos"],
                "resized_sizes": batch["resized_sizes"],
                "original_sizes": batch["original_sizes"],
                "video_ids": torch.tensor([example["video_id"] for example in examples], dtype=torch.long),
            }
        pixel_values = self.video_processor(videos=videos, do_resize=False, return_tensors="pt")["pixel_values_videos"]
        height, width = pixel_values.shape[-2:]
        mask_labels = []
        for example in examples:
            masks = example["mask_labels"]
            mask_labels.append(F.pad(masks, (0, width - masks.shape[-1], 0, height - masks.shape[-2])))
        return {
            "pixel_values_videos": pixel_values,
            "mask_labels": mask_labels,
            "class_labels": [example["class_labels"] for example in examples],
        }


__all__ = ["VideoMask2FormerDataCollator"]
