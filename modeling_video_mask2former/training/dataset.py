"""Torch datasets over the videos of `load_youtubevis` (a `datasets.Dataset`): training clips and whole videos."""

import os
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, load_dataset

from ..data import load_youtubevis, make_training_clip
from ..data.clips import decode_frame


def load_training_videos(
    annotations: str | os.PathLike | None = None,
    frames_dir: str | os.PathLike | None = None,
    parquet_dir: str | os.PathLike | None = None,
    split: str = "train",
) -> Dataset:
    """
    The videos of a split, one row per video: from a YouTube-VIS annotation json and its frame folder (checked by
    `load_youtubevis`, which names the file, video, annotation and field of any malformed entry), or from the Parquet
    shards `<split>-*.parquet` that `write_parquet_shards` writes.
    """
    if parquet_dir is not None:
        files = sorted(Path(parquet_dir).glob(f"{split}-*.parquet"))
        if not files:
            raise FileNotFoundError(f"No {split}-*.parquet shards in {parquet_dir}.")
        return load_dataset("parquet", data_files=[str(file) for file in files], split="train")
    if annotations is None or frames_dir is None:
        raise ValueError("Give an annotation file and its frame folder, or a folder of Parquet shards.")
    return load_youtubevis(annotations, frames_dir, require_annotations=True)


def _num_labels(videos: Dataset) -> int:
    return videos.features["annotations"].feature["category"].num_classes


class YouTubeVISClipDataset(torch.utils.data.Dataset):
    """
    One training clip per video and visit: `data.make_training_clip` (frame sampling, per-clip resize and flip) with a
    generator seeded by `(seed, epoch, index)`, so a clip does not depend on the data order, the process or the worker
    that loads it, and a resumed run sees the same clips. [`VideoMask2FormerTrainer`] calls [`set_epoch`].

    Labels follow the original `prepare_targets`: a track absent from the clip's last frame is trained as the no-object
    class (`num_labels`).

    Args:
        videos (`datasets.Dataset`): rows of `load_youtubevis` (or its Parquet shards).
        num_frames (`int`): frames per clip (`INPUT.SAMPLING_FRAME_NUM`).
        sampling_frame_range (`int`): frames are drawn within this distance of the reference frame.
        min_sizes (`Sequence[int]`): shortest-edge sizes, one drawn per clip (`INPUT.MIN_SIZE_TRAIN`).
        max_size (`int`): longest-edge cap (`INPUT.MAX_SIZE_TRAIN`).
        flip_prob (`float`): probability of a horizontal flip of the whole clip.
        seed (`int`): base seed of the augmentations.

    Items: `frames` `(T, 3, H, W)` uint8, `mask_labels` `(tracks, T, H, W)` float 0/1, `class_labels` `(tracks,)` long.
    """

    def __init__(
        self,
        videos: Dataset,
        num_frames: int = 2,
        sampling_frame_range: int = 20,
        min_sizes: Sequence[int] = (360, 480),
        max_size: int = 1333,
        flip_prob: float = 0.5,
        seed: int = 0,
    ):
        # Rows as Arrow, converted one at a time: frames stay undecoded until `make_training_clip` picks its own.
        self.videos = videos.with_format("arrow")
        self.num_labels = _num_labels(videos)
        self.num_frames = num_frames
        self.sampling_frame_range = sampling_frame_range
        self.min_sizes = tuple(min_sizes)
        self.max_size = max_size
        self.flip_prob = flip_prob
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.videos)

    def generator(self, index: int) -> random.Random:
        """The generator of video `index`'s clip in the current epoch."""
        state = np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(2, dtype=np.uint64)
        return random.Random(int(state[0]) << 64 | int(state[1]))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        clip = make_training_clip(
            self.videos[index].to_pylist()[0],
            self.generator(index),
            num_frames=self.num_frames,
            sampling_frame_range=self.sampling_frame_range,
            min_sizes=self.min_sizes,
            max_size=self.max_size,
            flip_prob=self.flip_prob,
        )
        in_last_frame = clip["track_ids"][:, -1] >= 0
        return {
            "frames": clip["pixel_values"],
            "mask_labels": clip["mask_labels"],
            "class_labels": torch.where(in_last_frame, clip["class_labels"], self.num_labels),
        }


class YouTubeVISVideoDataset(torch.utils.data.Dataset):
    """
    Whole videos for evaluation: items are `frames` `(T, 3, H, W)` uint8 at the annotated size and `video_id`.

    Args:
        videos (`datasets.Dataset`): rows of `load_youtubevis` (annotations are not needed).
    """

    def __init__(self, videos: Dataset):
        self.videos = videos.select_columns(["video_id", "frames"]).with_format("arrow")

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict:
        video = self.videos[index].to_pylist()[0]
        frames = np.stack([np.asarray(decode_frame(frame)) for frame in video["frames"]])
        return {"frames": torch.from_numpy(frames).permute(0, 3, 1, 2), "video_id": video["video_id"]}


__all__ = ["YouTubeVISClipDataset", "YouTubeVISVideoDataset", "load_training_videos"]
