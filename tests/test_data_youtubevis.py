"""Loading the official YouTube-VIS layout into `datasets`, validation errors, and Parquet shards that round-trip."""

import copy
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from datasets import load_dataset
from PIL import Image
from pycocotools import mask as mask_utils

from modeling_video_mask2former.data import youtubevis
from modeling_video_mask2former.data.categories import CategoryMapping, load_categories
from modeling_video_mask2former.data.synthetic import generate_synthetic_ytvis
from modeling_video_mask2former.data.youtubevis import (
    YTVISFormatError,
    decode_segmentation,
    load_youtubevis,
    write_parquet_shards,
)


HEIGHT, WIDTH = 20, 30
POLYGON = [[2.0, 2.0, 20.0, 3.0, 12.0, 15.0]]


def reference_mask(segmentation, height, width):
    """pycocotools' decoding of an original JSON segmentation (zeros for null)."""
    if segmentation is None:
        return np.zeros((height, width), dtype=np.uint8)
    if isinstance(segmentation, list):
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width)))
    if isinstance(segmentation["counts"], str):
        return mask_utils.decode({"size": segmentation["size"], "counts": segmentation["counts"].encode()})
    return mask_utils.decode(mask_utils.frPyObjects(segmentation, height, width))


def uncompressed(mask):
    flat = mask.ravel(order="F")
    boundaries = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    counts = np.diff(boundaries).tolist()
    return {"counts": [0] + counts if flat[0] else counts, "size": list(mask.shape)}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("ytvis")
    return generate_synthetic_ytvis(root, num_videos=5, seed=1), root / "JPEGImages"


@pytest.fixture
def handmade(tmp_path):
    """A 1-video, 3-frame file with polygon, uncompressed RLE, compressed RLE and null segmentations."""
    (tmp_path / "JPEGImages" / "vid").mkdir(parents=True)
    file_names = [f"vid/{5 * t:05d}.jpg" for t in range(3)]
    for t, name in enumerate(file_names):
        Image.fromarray(np.full((HEIGHT, WIDTH, 3), 40 * t, np.uint8)).save(tmp_path / "JPEGImages" / name)
    square = np.zeros((HEIGHT, WIDTH), np.uint8)
    square[5:12, 8:20] = 1
    compressed = mask_utils.encode(np.asfortranarray(square))
    data = {
        "info": {},
        "licenses": [],
        "videos": [{"id": 1, "height": HEIGHT, "width": WIDTH, "length": 3, "file_names": file_names}],
        "categories": [{"supercategory": "object", "id": 2, "name": "cat"}, {"id": 1, "name": "dog"}],
        "annotations": [
            {
                "id": 7,
                "video_id": 1,
                "category_id": 2,
                "iscrowd": 0,
                "segmentations": [POLYGON, uncompressed(square), None],
            },
            {
                "id": 8,
                "video_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "segmentations": [None, {"size": [HEIGHT, WIDTH], "counts": compressed["counts"].decode()}, []],
                "areas": [None, 84.0, None],
                "bboxes": [None, [8.0, 5.0, 12.0, 7.0], None],
            },
        ],
    }
    return tmp_path, data


def write(tmp_path, data, name="train.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_round_trip_through_parquet(tmp_path, synthetic):
    annotation_file, frames_dir = synthetic
    dataset = load_youtubevis(annotation_file, frames_dir, require_annotations=True)
    shards = write_parquet_shards(dataset, tmp_path / "parquet", max_shard_size="40KB")
    assert len(shards) > 1
    reloaded = load_dataset(
        "parquet", data_files=[str(shard) for shard in shards], split="train", cache_dir=str(tmp_path / "cache")
    )
    assert reloaded.features == dataset.features
    assert reloaded.features["annotations"].feature["category"].names == [
        "red_ellipse",
        "green_rectangle",
        "blue_triangle",
        "yellow_diamond",
    ]

    original = json.loads(annotation_file.read_text())
    videos = {video["id"]: video for video in original["videos"]}
    annotations = {annotation["id"]: annotation for annotation in original["annotations"]}
    assert sorted(reloaded["video_id"]) == sorted(videos)
    null_frames = 0
    for row in reloaded:
        video = videos[row["video_id"]]
        assert (row["height"], row["width"], row["length"]) == (video["height"], video["width"], video["length"])
        assert row["video_name"] == video["file_names"][0].split("/")[0]
        for frame, file_name in zip(row["frames"], video["file_names"], strict=True):
            assert np.array_equal(np.asarray(frame), np.asarray(Image.open(frames_dir / file_name)))
        expected_ids = [a["id"] for a in original["annotations"] if a["video_id"] == row["video_id"]]
        assert [track["id"] for track in row["annotations"]] == expected_ids
        for track in row["annotations"]:
            annotation = annotations[track["id"]]
            assert track["category_id"] == annotation["category_id"] == track["category"] + 1
            assert track["areas"] == annotation["areas"] and track["bboxes"] == annotation["bboxes"]
            for segmentation, expected in zip(track["segmentations"], annotation["segmentations"], strict=True):
                assert (segmentation is None) == (expected is None)
                null_frames += expected is None
                assert np.array_equal(
                    decode_segmentation(segmentation, row["height"], row["width"]),
                    reference_mask(expected, row["height"], row["width"]),
                )
    assert null_frames > 0


def test_polygon_and_rle_inputs(handmade):
    root, data = handmade
    dataset = load_youtubevis(write(root, data), root / "JPEGImages")
    assert dataset.features["annotations"].feature["category"].names == ["dog", "cat"]
    first, second = dataset[0]["annotations"]
    assert (first["category"], first["category_id"], second["category"], second["category_id"]) == (1, 2, 0, 1)
    for track, annotation in zip((first, second), data["annotations"]):
        for segmentation, expected in zip(track["segmentations"], annotation["segmentations"]):
            assert segmentation is None or isinstance(segmentation["counts"], str)
            assert np.array_equal(
                decode_segmentation(segmentation, HEIGHT, WIDTH), reference_mask(expected or None, HEIGHT, WIDTH)
            )
    # missing areas / bboxes are computed from the masks; an empty polygon list means absent
    assert first["areas"][2] is None and first["areas"][1] == 84.0 and first["bboxes"][1] == [8.0, 5.0, 12.0, 7.0]
    assert first["areas"][0] == float(reference_mask(POLYGON, HEIGHT, WIDTH).sum())
    assert second["segmentations"][2] is None


def test_videos_without_annotations(handmade):
    root, data = handmade
    del data["annotations"]
    path = write(root, data, "valid.json")
    dataset = load_youtubevis(path, root / "JPEGImages")
    assert dataset[0]["annotations"] == [] and dataset[0]["length"] == 3
    with pytest.raises(YTVISFormatError, match="ground truth is private") as error:
        load_youtubevis(path, root / "JPEGImages", require_annotations=True)
    assert str(path) in str(error.value)


def break_category(data):
    data["annotations"][0]["category_id"] = 99


def break_length(data):
    data["annotations"][0]["segmentations"].pop()


def break_rle_size(data):
    data["annotations"][0]["segmentations"][1]["size"] = [HEIGHT, WIDTH + 1]


def break_bboxes(data):
    data["annotations"][0]["bboxes"] = [None, [1.0, 2.0], None]


@pytest.mark.parametrize(
    "mutate, field, words",
    [
        (break_category, "category_id", ["unknown category id 99"]),
        (break_length, "segmentations", ["2 entries", "3 frames"]),
        (break_rle_size, "segmentations", ["frame 1", "[20, 31]", "[20, 30]"]),
        (break_bboxes, "bboxes", ["frame 1", "4 numbers"]),
    ],
)
def test_annotation_errors_name_file_video_annotation_and_field(handmade, mutate, field, words):
    root, data = handmade
    mutate(data)
    path = write(root, data)
    with pytest.raises(YTVISFormatError) as error:
        load_youtubevis(path, root / "JPEGImages")
    message = str(error.value)
    for part in [str(path), "video 1", "annotation 7", f"field '{field}'", *words]:
        assert part in message


def test_missing_frame_file(handmade):
    root, data = handmade
    (root / "JPEGImages" / "vid" / "00005.jpg").unlink()
    path = write(root, data)
    with pytest.raises(YTVISFormatError) as error:
        load_youtubevis(path, root / "JPEGImages")
    message = str(error.value)
    for part in [str(path), "video 1", "field 'file_names'", "vid/00005.jpg", "1 of 3 frames missing"]:
        assert part in message


def test_malformed_json(handmade):
    root, data = handmade
    broken = copy.deepcopy(data)
    del broken["videos"]
    path = write(root, broken)
    with pytest.raises(YTVISFormatError, match="missing top-level key.*'videos'") as error:
        load_youtubevis(path, root / "JPEGImages")
    assert str(path) in str(error.value)

    path.write_text(json.dumps(data)[:-10])
    with pytest.raises(YTVISFormatError, match="not valid JSON") as error:
        load_youtubevis(path, root / "JPEGImages")
    assert str(path) in str(error.value)

    del data["annotations"][1]["segmentations"]
    path = write(root, data)
    with pytest.raises(YTVISFormatError, match="annotation 8, field 'segmentations': missing"):
        load_youtubevis(path, root / "JPEGImages")


def test_interrupted_shard_writing_leaves_no_partial_shard(tmp_path, synthetic, monkeypatch):
    dataset = load_youtubevis(*synthetic)
    out_dir = tmp_path / "parquet"
    write_table = pq.write_table
    calls = []

    def failing_write_table(table, where, **kwargs):
        calls.append(where)
        if len(calls) == 2:
            with open(where, "wb") as handle:
                handle.write(b"PAR1 partial")
            raise KeyboardInterrupt
        write_table(table, where, **kwargs)

    monkeypatch.setattr(youtubevis.pq, "write_table", failing_write_table)
    with pytest.raises(KeyboardInterrupt):
        write_parquet_shards(dataset, out_dir, max_shard_size="40KB")
    files = sorted(path.name for path in out_dir.iterdir())
    assert len(calls) == 2 and files == [calls[0].name[1:].removesuffix(".incomplete")]
    assert pq.read_table(out_dir / files[0]).num_rows > 0


def test_categories():
    for name, count in [("ytvis_2019", 40), ("ytvis_2021", 40), ("ovis", 25)]:
        categories = load_categories(name)
        assert [category["id"] for category in categories] == list(range(1, count + 1))
    mapping = CategoryMapping.from_dataset("ytvis_2019")
    assert mapping.id2label[0] == "person" and mapping.label2id["tennis_racket"] == 39
    assert mapping.label_to_category_id(39) == 40 and mapping.category_id_to_label(40) == 39
    assert CategoryMapping.from_dataset("ovis").names[-1] == "Vehical"  # the official file's spelling
    assert CategoryMapping.from_dataset("ytvis_2021").names[:3] == ("airplane", "bear", "bird")
    with pytest.raises(ValueError, match="Unknown category id 41"):
        mapping.category_id_to_label(41)
