"""YouTube-VIS result records from the tracks of `post_process_video_instance_segmentation`."""

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from pycocotools import mask as mask_utils


def encode_masks(masks: torch.Tensor | np.ndarray) -> list[dict]:
    """
    `(T, H, W)` binary masks -> one compressed RLE `{"size": [H, W], "counts": str}` per frame, empty frames
    included, as the original's `instances_to_coco_json_video` writes them.
    """
    masks = masks.cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("utf-8")
    return rles


def tracks_to_ytvis_results(
    tracks: list[dict],
    video_id: int,
    label_to_category_id: Mapping[int, int] | Sequence[int] | None = None,
) -> list[dict]:
    """
    One YouTube-VIS result record per track: `{"video_id", "score", "category_id", "segmentations"}`.

    Args:
        tracks (`list[dict]`):
            One video's tracks from `post_process_video_instance_segmentation` (`score`, `label`, `masks` `(T, H, W)`).
        video_id (`int`):
            The video's id in the dataset annotations.
        label_to_category_id (`Mapping[int, int]` or `Sequence[int]`, *optional*):
            Dataset category id of each 0-based label (the inverse of detectron2's
            `thing_dataset_id_to_contiguous_id`). Defaults to `label + 1`, which is right for YouTube-VIS 2019/2021.
    """
    return [
        {
            "video_id": video_id,
            "score": float(track["score"]),
            "category_id": (
                track["label"] + 1 if label_to_category_id is None else int(label_to_category_id[track["label"]])
            ),
            "segmentations": encode_masks(track["masks"]),
        }
        for track in tracks
    ]


__all__ = ["encode_masks", "tracks_to_ytvis_results"]
