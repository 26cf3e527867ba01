"""Loading and validation of YouTubeVIS ground truth and result records, kept as RLE (never decoded)."""

import json
import math
import numbers
import os
from dataclasses import dataclass, field

import numpy as np
from pycocotools import mask as mask_utils


class EvaluationInputError(ValueError):
    """Raised when ground truth or predictions are malformed; the message names the offending record and field."""


@dataclass
class VideoInfo:
    height: int
    width: int
    num_frames: int


@dataclass
class VideoTrack:
    """One instance over a whole video: a ground-truth annotation or a predicted track.

    `segmentations` holds one compressed RLE per frame, `None` where the instance is absent. `frame_areas` are the
    mask areas per frame (0 where absent) and `area` is the official instance area: the mean of its non-null,
    non-zero per-frame areas (0 when there are none).
    """

    video_id: int
    category_id: int
    segmentations: list
    frame_areas: np.ndarray
    area: float
    score: float = 1.0
    iscrowd: bool = False


@dataclass
class YTVISGroundTruth:
    videos: dict[int, VideoInfo]
    categories: dict[int, str]
    tracks: list[VideoTrack] = field(default_factory=list)


def read_json(source, what: str):
    """Loads `source` if it is a path, else returns it unchanged; `what` names the input in error messages."""
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source) as handle:
                return json.load(handle)
        except json.JSONDecodeError as error:
            raise EvaluationInputError(f"{what} file {os.fspath(source)} is not valid JSON: {error}") from None
    return source


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def mean_nonzero_area(areas) -> float:
    """The official instance area: mean of the truthy (non-null, non-zero) per-frame areas, 0 when there are none."""
    present = [area for area in areas if area]
    return float(np.array(present).mean()) if present else 0.0


def _frame_areas(segmentations: list) -> np.ndarray:
    areas = np.zeros(len(segmentations))
    present = [index for index, rle in enumerate(segmentations) if rle is not None]
    if present:
        areas[present] = mask_utils.area([segmentations[index] for index in present])
    return areas


def _ground_truth_rle(segmentation, video: VideoInfo, where: str):
    """Converts a ground-truth frame (polygons, uncompressed or compressed RLE, null) to compressed RLE or None."""
    if not segmentation:
        return None
    if isinstance(segmentation, list):
        if not all(isinstance(polygon, list) and all(map(_is_number, polygon)) for polygon in segmentation):
            raise EvaluationInputError(f"{where}: polygons must be lists of x, y coordinates")
        try:
            return mask_utils.merge(mask_utils.frPyObjects(segmentation, video.height, video.width))
        except Exception as error:  # pycocotools raises a bare Exception for inputs it cannot read
            raise EvaluationInputError(f"{where}: invalid polygons ({error})") from None
    if not isinstance(segmentation, dict) or "counts" not in segmentation or "size" not in segmentation:
        raise EvaluationInputError(f"{where}: expected an RLE {{size, counts}}, a polygon list or null")
    _check_rle_size(segmentation, video, where)
    if isinstance(segmentation["counts"], list):
        counts = segmentation["counts"]
        if not all(_is_int(count) and count >= 0 for count in counts) or sum(counts) != video.height * video.width:
            raise EvaluationInputError(f"{where}: RLE counts must be non-negative integers summing to height * width")
        return mask_utils.frPyObjects(segmentation, video.height, video.width)
    if not isinstance(segmentation["counts"], (str, bytes)):
        raise EvaluationInputError(f"{where}: RLE 'counts' must be a list of run lengths or a compressed string")
    return segmentation


def _check_rle_size(rle: dict, video: VideoInfo, where: str) -> None:
    size = rle["size"]
    if not isinstance(size, (list, tuple)) or list(size) != [video.height, video.width]:
        raise EvaluationInputError(
            f"{where}: RLE size {size!r} does not match the video size [{video.height}, {video.width}]"
        )


def _load_videos(entries) -> dict[int, VideoInfo]:
    videos = {}
    for index, video in enumerate(entries):
        where = f"annotations: video {index}"
        if not isinstance(video, dict) or not all(_is_int(video.get(key)) for key in ("id", "height", "width")):
            raise EvaluationInputError(f"{where}: 'id', 'height' and 'width' must be integers")
        num_frames = len(video["file_names"]) if "file_names" in video else video.get("length")
        if not _is_int(num_frames):
            raise EvaluationInputError(f"{where} (id {video['id']}): needs 'file_names' or an integer 'length'")
        if video["id"] in videos:
            raise EvaluationInputError(f"{where}: duplicate video id {video['id']}")
        videos[video["id"]] = VideoInfo(video["height"], video["width"], num_frames)
    return videos


def _load_categories(entries) -> dict[int, str]:
    categories = {}
    for index, category in enumerate(entries):
        if not isinstance(category, dict) or not _is_int(category.get("id")):
            raise EvaluationInputError(f"annotations: category {index}: 'id' must be an integer")
        categories[category["id"]] = str(category.get("name", category["id"]))
    return categories


def _load_annotation(annotation, index: int, videos: dict[int, VideoInfo], categories: dict[int, str]) -> VideoTrack:
    where = f"annotations: annotation {index}"
    if not isinstance(annotation, dict):
        raise EvaluationInputError(f"{where}: expected an object")
    where += f" (id {annotation.get('id')})"
    video_id, category_id = annotation.get("video_id"), annotation.get("category_id")
    if not _is_int(video_id) or video_id not in videos:
        raise EvaluationInputError(f"{where}: unknown video_id {video_id!r}")
    if not _is_int(category_id) or category_id not in categories:
        raise EvaluationInputError(f"{where}: unknown category_id {category_id!r}")
    video = videos[video_id]
    segmentations = annotation.get("segmentations")
    if not isinstance(segmentations, list) or len(segmentations) != video.num_frames:
        found = len(segmentations) if isinstance(segmentations, list) else repr(segmentations)
        raise EvaluationInputError(
            f"{where}: 'segmentations' has {found} entries, video {video_id} has {video.num_frames} frames"
        )
    rles = [
        _ground_truth_rle(segmentation, video, f"{where}, frame {frame}")
        for frame, segmentation in enumerate(segmentations)
    ]
    frame_areas = _frame_areas(rles)
    json_areas = annotation.get("areas")
    if json_areas is not None and not (
        isinstance(json_areas, list) and all(area is None or _is_number(area) for area in json_areas)
    ):
        raise EvaluationInputError(f"{where}: 'areas' must be a list of numbers or nulls")
    return VideoTrack(
        video_id=video_id,
        category_id=category_id,
        segmentations=rles,
        frame_areas=frame_areas,
        area=mean_nonzero_area(frame_areas if json_areas is None else json_areas),
        iscrowd=bool(annotation.get("iscrowd", 0)),
    )


def load_ground_truth(annotations, require_annotations: bool = True) -> YTVISGroundTruth:
    """Loads a YouTubeVIS/OVIS annotation json (a path or the loaded dict) and converts every mask to compressed RLE.

    Instance areas come from the json `areas` field as in the official evaluator (from the masks if it is missing).
    With `require_annotations=False` a valid/test json (videos and categories only) is accepted.
    """
    data = read_json(annotations, "annotations")
    if not isinstance(data, dict) or "videos" not in data or "categories" not in data:
        raise EvaluationInputError("annotations: expected a YouTubeVIS json object with 'videos' and 'categories'")
    if require_annotations and "annotations" not in data:
        raise EvaluationInputError(
            "annotations: the file has no 'annotations' (the valid/test ground truth is private): evaluate on a "
            "held-out part of the train split, or submit results.json to the CodaLab server"
        )
    for key in ("videos", "categories", "annotations"):
        if not isinstance(data.get(key, []), list):
            raise EvaluationInputError(f"annotations: '{key}' must be a list")
    videos = _load_videos(data["videos"])
    categories = _load_categories(data["categories"])
    tracks = [
        _load_annotation(annotation, index, videos, categories)
        for index, annotation in enumerate(data.get("annotations", []))
    ]
    return YTVISGroundTruth(videos=videos, categories=categories, tracks=tracks)


def check_result_record(record, index: int) -> None:
    """Checks one result record's fields and types (what the CodaLab servers read), without the ground truth."""
    where = f"predictions: record {index}"
    if not isinstance(record, dict):
        raise EvaluationInputError(f"{where}: expected an object, got {type(record).__name__}")
    for key in ("video_id", "category_id", "score", "segmentations"):
        if key not in record:
            raise EvaluationInputError(f"{where}: missing '{key}'")
    where += f" (video_id {record['video_id']!r})"
    if not _is_int(record["video_id"]):
        raise EvaluationInputError(f"{where}: 'video_id' must be an integer")
    if not _is_int(record["category_id"]):
        raise EvaluationInputError(f"{where}: 'category_id' must be an integer, got {record['category_id']!r}")
    if not _is_number(record["score"]):
        raise EvaluationInputError(f"{where}: 'score' must be a finite number, got {record['score']!r}")
    if not isinstance(record["segmentations"], list):
        raise EvaluationInputError(f"{where}: 'segmentations' must be a list (one RLE or null per frame)")
    for frame, rle in enumerate(record["segmentations"]):
        if rle is None:
            continue
        if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
            raise EvaluationInputError(f"{where}, frame {frame}: expected a compressed RLE {{size, counts}} or null")
        if not isinstance(rle["counts"], (str, bytes)):
            raise EvaluationInputError(
                f"{where}, frame {frame}: 'counts' must be a compressed RLE string (pycocotools.mask.encode)"
            )
        size = rle["size"]
        if not isinstance(size, (list, tuple)) or len(size) != 2 or not all(_is_int(s) for s in size):
            raise EvaluationInputError(f"{where}, frame {frame}: RLE 'size' must be [height, width]")


def load_predictions(predictions, ground_truth: YTVISGroundTruth) -> list[VideoTrack]:
    """Loads and validates YouTubeVIS result records (a path or the loaded list) against the ground truth.

    Both `null` and encoded-empty frames are accepted; a record's area is the mean of its non-zero mask areas.
    """
    records = read_json(predictions, "predictions")
    if not isinstance(records, list):
        raise EvaluationInputError("predictions: expected a JSON list of result records")
    tracks = []
    for index, record in enumerate(records):
        check_result_record(record, index)
        where = f"predictions: record {index} (video_id {record['video_id']})"
        video = ground_truth.videos.get(record["video_id"])
        if video is None:
            raise EvaluationInputError(f"{where}: unknown video_id (not in the annotations)")
        if record["category_id"] not in ground_truth.categories:
            raise EvaluationInputError(f"{where}: unknown category_id {record['category_id']}")
        segmentations = record["segmentations"]
        if len(segmentations) != video.num_frames:
            raise EvaluationInputError(
                f"{where}: 'segmentations' has {len(segmentations)} entries, the video has {video.num_frames} frames"
            )
        for frame, rle in enumerate(segmentations):
            if rle is not None:
                _check_rle_size(rle, video, f"{where}, frame {frame}")
        frame_areas = _frame_areas(segmentations)
        tracks.append(
            VideoTrack(
                video_id=record["video_id"],
                category_id=record["category_id"],
                segmentations=segmentations,
                frame_areas=frame_areas,
                area=mean_nonzero_area(frame_areas),
                score=float(record["score"]),
            )
        )
    return tracks
