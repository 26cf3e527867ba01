"""The synthetic YouTube-VIS generator: official schema, determinism and occlusion-aware (visible) masks."""

import json
import re
from itertools import combinations
from pathlib import PurePosixPath

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from modeling_video_mask2former.data.synthetic import generate_synthetic_ytvis, render_synthetic_video


TOP_LEVEL_KEYS = {"info", "licenses", "videos", "categories", "annotations"}
VIDEO_KEYS = {"license", "coco_url", "height", "width", "length", "date_captured", "file_names", "flickr_url", "id"}
ANNOTATION_KEYS = {
    "height", "width", "length", "category_id", "segmentations", "bboxes", "video_id", "iscrowd", "id", "areas"
}  # fmt: skip
CATEGORY_KEYS = {"supercategory", "id", "name"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    path = generate_synthetic_ytvis(root, num_videos=6, seed=3)
    with open(path) as handle:
        return root, json.load(handle)


def decoded_masks(data):
    """{annotation id: (T, H, W) uint8} of the JSON's (uncompressed) RLEs, zeros where null."""
    videos = {video["id"]: video for video in data["videos"]}
    masks = {}
    for annotation in data["annotations"]:
        video = videos[annotation["video_id"]]
        masks[annotation["id"]] = np.stack(
            [
                np.zeros((video["height"], video["width"]), dtype=np.uint8)
                if segmentation is None
                else mask_utils.decode(mask_utils.frPyObjects(segmentation, video["height"], video["width"]))
                for segmentation in annotation["segmentations"]
            ]
        )
    return masks


def test_schema_is_the_official_one(generated):
    root, data = generated
    assert set(data) == TOP_LEVEL_KEYS
    assert all(set(category) == CATEGORY_KEYS for category in data["categories"])
    for video in data["videos"]:
        assert set(video) == VIDEO_KEYS
        assert len(video["file_names"]) == video["length"]
        assert len({PurePosixPath(name).parent for name in video["file_names"]}) == 1
        for file_name in video["file_names"]:
            assert re.fullmatch(r"[^/]+/\d{5}\.jpg", file_name)
            with Image.open(root / "JPEGImages" / file_name) as image:
                assert image.size == (video["width"], video["height"])
    videos = {video["id"]: video for video in data["videos"]}
    masks = decoded_masks(data)
    for annotation in data["annotations"]:
        video = videos[annotation["video_id"]]
        assert set(annotation) == ANNOTATION_KEYS
        assert annotation["length"] == 1 and annotation["iscrowd"] == 0
        assert (annotation["height"], annotation["width"]) == (video["height"], video["width"])
        assert (
            len(annotation["segmentations"])
            == len(annotation["areas"])
            == len(annotation["bboxes"])
            == video["length"]
        )
        for frame, (segmentation, area, box) in enumerate(
            zip(annotation["segmentations"], annotation["areas"], annotation["bboxes"])
        ):
            if segmentation is None:
                assert area is None and box is None
                continue
            assert set(segmentation) == {"counts", "size"}
            assert segmentation["size"] == [video["height"], video["width"]]
            assert all(isinstance(count, int) for count in segmentation["counts"])
            mask = masks[annotation["id"]][frame]
            assert area == float(mask.sum()) > 0
            rle = mask_utils.encode(np.asfortranarray(mask))
            assert box == mask_utils.toBbox(rle).tolist()
    # tracks enter, leave or are fully hidden somewhere in the set
    assert any(None in annotation["segmentations"] for annotation in data["annotations"])


def test_deterministic(tmp_path, generated):
    root, data = generated
    again = generate_synthetic_ytvis(tmp_path / "again", num_videos=6, seed=3)
    with open(again) as handle:
        assert json.load(handle) == data
    for video in data["videos"]:
        for file_name in video["file_names"]:
            assert (root / "JPEGImages" / file_name).read_bytes() == (
                tmp_path / "again" / "JPEGImages" / file_name
            ).read_bytes()
    other = generate_synthetic_ytvis(tmp_path / "other", num_videos=6, seed=4)
    with open(other) as handle:
        assert json.load(handle)["annotations"] != data["annotations"]


def test_masks_are_occlusion_aware(generated):
    _, data = generated
    masks = decoded_masks(data)
    for video in data["videos"]:
        tracks = [masks[a["id"]] for a in data["annotations"] if a["video_id"] == video["id"]]
        for first, second in combinations(tracks, 2):
            assert not (first & second).any()

    occluded = 0
    for seed in range(5):
        video = render_synthetic_video(np.random.default_rng(seed), 96, 128, num_frames=6, max_tracks=6)
        assert video.frames.shape == (6, 96, 128, 3) and video.frames.dtype == np.uint8
        assert video.visible_masks.shape == video.amodal_masks.shape == (len(video.category_ids), 6, 96, 128)
        assert not (video.visible_masks & ~video.amodal_masks).any()
        assert (video.visible_masks.sum(axis=0) <= 1).all()
        occluded += int((video.visible_masks != video.amodal_masks).any())
    assert occluded > 0


def test_compressed_rle(tmp_path):
    path = generate_synthetic_ytvis(tmp_path, num_videos=2, seed=0, rle_format="compressed", num_classes=6)
    with open(path) as handle:
        data = json.load(handle)
    assert len(data["categories"]) == 6
    segmentations = [s for a in data["annotations"] for s in a["segmentations"] if s is not None]
    assert segmentations and all(isinstance(s["counts"], str) for s in segmentations)
