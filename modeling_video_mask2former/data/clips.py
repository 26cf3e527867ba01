"""Training clips from rows of `load_youtubevis`, as the original `YTVISDatasetMapper(is_train=True)` builds them.

A clip is a reference frame drawn uniformly plus `num_frames - 1` frames near it; the whole clip shares one
shortest-edge resize (size drawn per clip, detectron2's `ResizeShortestEdge` rule, PIL bilinear for frames and nearest
for masks) and one horizontal flip, as the original's `choice_by_clip` / `flip_by_clip` settings.

Labels differ from the original's in one documented way: the original gives each track the class of its annotation
in the *last* sampled frame, and the no-object class where the track has no annotation there. Here each track keeps
its own class in `class_labels` and its per-frame presence in `track_ids` (`-1` where absent), from which that rule
follows (`track_ids[:, -1] == -1` → no-object). Absent means no annotation in that frame or a mask emptied by the
resize; the original keeps the class in the latter, rare case.
"""

import io
import random
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from .youtubevis import decode_segmentation


def sample_clip_frames(
    length: int, rng: random.Random, num_frames: int = 2, sampling_frame_range: int = 20
) -> list[int]:
    """Sorted frame indices `(num_frames,)` of one training clip of a `length`-frame video.

    As the original: a reference frame drawn uniformly, then `num_frames - 1` frames drawn *with replacement* (its
    `np.random.choice` default) from the frames at most `sampling_frame_range` away, the reference excluded. A
    1-frame video (where the original fails) repeats its frame.
    """
    reference = rng.randrange(length)
    start = max(0, reference - sampling_frame_range)
    end = min(length, reference + sampling_frame_range + 1)
    candidates = [index for index in range(start, end) if index != reference]
    others = rng.choices(candidates, k=num_frames - 1) if candidates else [reference] * (num_frames - 1)
    return sorted(others + [reference])


def resized_shape(height: int, width: int, short_edge: int, max_size: int) -> tuple[int, int]:
    """`(height, width)` after detectron2's `ResizeShortestEdge`: shorter side to `short_edge`, longer ≤ `max_size`."""
    scale = short_edge / min(height, width)
    new_height, new_width = (short_edge, scale * width) if height < width else (scale * height, short_edge)
    if max(new_height, new_width) > max_size:
        scale = max_size / max(new_height, new_width)
        new_height, new_width = new_height * scale, new_width * scale
    return int(new_height + 0.5), int(new_width + 0.5)


def decode_frame(frame) -> Image.Image:
    """An RGB image from a frame as `datasets` gives it: PIL image, `{"bytes", "path"}` (`decode=False`) or path."""
    if isinstance(frame, dict):
        frame = io.BytesIO(frame["bytes"]) if frame.get("bytes") is not None else frame["path"]
    if not isinstance(frame, Image.Image):
        frame = Image.open(frame)
    return frame.convert("RGB")


def make_training_clip(
    example: dict,
    rng: random.Random,
    num_frames: int = 2,
    sampling_frame_range: int = 20,
    min_sizes: Sequence[int] = (360, 480),
    max_size: int = 1333,
    flip_prob: float = 0.5,
) -> dict[str, torch.Tensor]:
    """One training clip of a `load_youtubevis` row; defaults are the original YouTube-VIS configs' `INPUT` values.

    Only the sampled frames are decoded when the row's frames are not (`cast_column("frames",
    List(Image(decode=False)))`). Crowd tracks and tracks absent from every sampled frame are dropped.

    Returns:
        `pixel_values` `(T, 3, H, W)` uint8, `mask_labels` `(N, T, H, W)` float 0/1, `class_labels` `(N,)` long
        (0-based), `track_ids` `(N, T)` long (annotation id, `-1` where absent) and `frame_indices` `(T,)` long.
    """
    height, width = example["height"], example["width"]
    indices = sample_clip_frames(example["length"], rng, num_frames, sampling_frame_range)
    new_height, new_width = resized_shape(height, width, rng.choice(list(min_sizes)), max_size)
    flip = rng.random() < flip_prob

    def transform(array: np.ndarray, resample: Image.Resampling) -> np.ndarray:
        array = np.asarray(Image.fromarray(array).resize((new_width, new_height), resample))
        return np.ascontiguousarray(array[:, ::-1] if flip else array)

    frames = []
    for index in indices:
        image = decode_frame(example["frames"][index])
        if image.size != (width, height):
            raise ValueError(
                f"Video {example['video_id']}: frame {index} is {image.width}×{image.height} but the annotation "
                f"file gives {width}×{height}."
            )
        frames.append(torch.from_numpy(np.array(transform(np.asarray(image), Image.Resampling.BILINEAR))).permute(2, 0, 1))

    masks, track_ids, class_labels = [], [], []
    empty = np.zeros((new_height, new_width), dtype=np.uint8)
    for track in example["annotations"]:
        if track["iscrowd"]:
            continue
        segmentations = [track["segmentations"][index] for index in indices]
        track_masks = np.stack(
            [
                empty
                if segmentation is None
                else transform(decode_segmentation(segmentation, height, width), Image.Resampling.NEAREST)
                for segmentation in segmentations
            ]
        )
        present = track_masks.any(axis=(1, 2))
        if present.any():
            masks.append(track_masks)
            track_ids.append(np.where(present, track["id"], -1))
            class_labels.append(track["category"])

    return {
        "pixel_values": torch.stack(frames),
        "mask_labels": torch.from_numpy(np.stack(masks)).float()
        if masks
        else torch.zeros((0, len(indices), new_height, new_width)),
        "class_labels": torch.tensor(class_labels, dtype=torch.long),
        "track_ids": torch.from_numpy(np.stack(track_ids)).long()
        if track_ids
        else torch.zeros((0, len(indices)), dtype=torch.long),
        "frame_indices": torch.tensor(indices, dtype=torch.long),
    }
