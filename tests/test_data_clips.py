"""Training clips: frame sampling as the original mapper, one augmentation per clip, empty tracks dropped."""

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Image as ImageFeature
from datasets import List
from PIL import Image
from pycocotools import mask as mask_utils
from safetensors.torch import load_file

from modeling_video_mask2former.data.clips import make_training_clip, resized_shape, sample_clip_frames
from modeling_video_mask2former.data.synthetic import SYNTHETIC_CLASSES, generate_synthetic_ytvis
from modeling_video_mask2former.data.youtubevis import load_youtubevis


PREPROCESS = Path(__file__).parent / "fixtures" / "preprocess"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    return load_youtubevis(generate_synthetic_ytvis(root, num_videos=4, seed=2), root / "JPEGImages")


def rle(mask):
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(mask.shape), "counts": encoded["counts"].decode()}


def test_frames_within_range():
    for seed in range(200):
        rng = random.Random(seed)
        length = rng.randint(1, 60)
        indices = sample_clip_frames(length, rng, num_frames=3, sampling_frame_range=4)
        assert len(indices) == 3 and indices == sorted(indices)
        assert all(0 <= index < length for index in indices)
        # some sampled frame is the reference: every other one lies within the range of it
        assert any(all(abs(index - reference) <= 4 for index in indices) for reference in indices)
        if length > 1:  # the reference is never drawn again among the others
            assert any(indices.count(reference) == 1 for reference in indices)
    assert sample_clip_frames(1, random.Random(0), num_frames=2) == [0, 0]


def test_resize_matches_the_original_mapper():
    """Sizes and pixels of detectron2's `ResizeShortestEdge` as recorded from the original mapper (tests/fixtures)."""
    with open(PREPROCESS / "preprocess_mapper.json") as handle:
        reference = json.load(handle)
    for row in reference["resize_size_table"]:
        assert resized_shape(*row["raw_hw"], row["min_size_test"], row["max_size_test"]) == tuple(row["resized_hw"])
    tensors = load_file(PREPROCESS / "preprocess_mapper.safetensors")
    for name, case in reference["cases"].items():
        raw = tensors[f"{name}.raw_frames_uint8_thwc"][0].numpy()
        example = {"video_id": 0, "height": raw.shape[0], "width": raw.shape[1], "length": 1, "annotations": []}
        example["frames"] = [Image.fromarray(raw)]
        clip = make_training_clip(example, random.Random(0), min_sizes=(case["min_size_test"],), flip_prob=0.0)
        assert torch.equal(clip["pixel_values"][:1], tensors[f"{name}.mapper_output_uint8_tchw"])


def test_clip_is_deterministic_and_shaped(dataset):
    example = dataset[0]
    first = make_training_clip(example, random.Random(5))
    second = make_training_clip(example, random.Random(5))
    for key in first:
        assert torch.equal(first[key], second[key])
    frames, height, width = first["pixel_values"].shape[0], *first["pixel_values"].shape[-2:]
    assert first["pixel_values"].dtype == torch.uint8 and first["pixel_values"].shape == (2, 3, height, width)
    assert min(height, width) in (360, 480)
    tracks = first["class_labels"].shape[0]
    assert (
        first["mask_labels"].shape == (tracks, frames, height, width) and first["mask_labels"].dtype == torch.float32
    )
    assert set(first["mask_labels"].unique().tolist()) <= {0.0, 1.0}
    assert first["track_ids"].shape == (tracks, frames) and first["class_labels"].dtype == torch.long
    # -1 exactly where the (resized) mask is empty
    assert torch.equal(first["track_ids"] == -1, first["mask_labels"].sum(dim=(-2, -1)) == 0)
    clips = [make_training_clip(example, random.Random(seed)) for seed in range(6)]
    assert len({(tuple(c["frame_indices"].tolist()), c["pixel_values"].shape) for c in clips}) > 1


def test_one_augmentation_for_the_whole_clip(dataset):
    example = dataset[1]
    kwargs = {"num_frames": 4, "sampling_frame_range": 3}
    plain = make_training_clip(example, random.Random(11), flip_prob=0.0, **kwargs)
    flipped = make_training_clip(example, random.Random(11), flip_prob=1.0, **kwargs)
    assert torch.equal(plain["frame_indices"], flipped["frame_indices"])
    assert torch.equal(flipped["pixel_values"], plain["pixel_values"].flip(-1))
    assert torch.equal(flipped["mask_labels"], plain["mask_labels"].flip(-1))
    assert torch.equal(flipped["track_ids"], plain["track_ids"])
    # the masks sit on the objects in every frame: the pixels under a mask have the class's colour
    for clip in (plain, flipped):
        for masks, label in zip(clip["mask_labels"], clip["class_labels"]):
            colour = torch.tensor(SYNTHETIC_CLASSES[label][1], dtype=torch.float)
            for frame, mask in zip(clip["pixel_values"], masks):
                if mask.sum() > 50:
                    mean = frame.float()[:, mask.bool()].mean(dim=1)
                    assert (mean - colour).abs().max() < 40


def test_empty_and_crowd_tracks_dropped():
    height, width = 24, 32
    square = np.zeros((height, width), bool)
    square[4:12, 6:18] = True
    frames = [Image.fromarray(np.full((height, width, 3), 30 * t, np.uint8)) for t in range(3)]
    tracks = [
        {"id": 1, "category": 0, "iscrowd": 0, "segmentations": [rle(square), None, rle(square)]},
        {"id": 2, "category": 1, "iscrowd": 0, "segmentations": [None, None, None]},
        {"id": 3, "category": 2, "iscrowd": 1, "segmentations": [rle(square)] * 3},
        {"id": 4, "category": 3, "iscrowd": 0, "segmentations": [None, rle(square), None]},
    ]
    example = {"video_id": 9, "height": height, "width": width, "length": 3, "frames": frames, "annotations": tracks}
    for seed in range(10):
        clip = make_training_clip(example, random.Random(seed), num_frames=3, min_sizes=(24,), flip_prob=0.0)
        assert clip["frame_indices"].tolist() == sorted(clip["frame_indices"].tolist())
        present = {
            1: [i != 1 for i in clip["frame_indices"].tolist()],
            4: [i == 1 for i in clip["frame_indices"].tolist()],
        }
        expected = [(track_id, label) for track_id, label in ((1, 0), (4, 3)) if any(present[track_id])]
        assert clip["class_labels"].tolist() == [label for _, label in expected]
        for ids, (track_id, _) in zip(clip["track_ids"].tolist(), expected):
            assert ids == [track_id if on else -1 for on in present[track_id]]
        assert torch.equal(clip["mask_labels"][:, :, 4:12, 6:18].amin(dim=(-2, -1)), (clip["track_ids"] != -1).float())


def test_undecoded_frames_give_the_same_clip(dataset):
    lazy = dataset.cast_column("frames", List(ImageFeature(decode=False)))
    assert lazy[2]["frames"][0]["path"].endswith(".jpg")
    decoded = make_training_clip(dataset[2], random.Random(3))
    undecoded = make_training_clip(lazy[2], random.Random(3))
    for key in decoded:
        assert torch.equal(decoded[key], undecoded[key])


def test_frame_size_mismatch_is_reported(dataset):
    example = dict(dataset[0], height=dataset[0]["height"] + 1)
    with pytest.raises(ValueError, match=f"Video {example['video_id']}: frame"):
        make_training_clip(example, random.Random(0))
