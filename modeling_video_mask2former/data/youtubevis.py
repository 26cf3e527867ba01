"""YouTube-VIS / OVIS annotation files and frame folders as a `datasets.Dataset`, and Parquet shards of it.

One row per video:

- `video_id` (int), `video_name` (the frame folder), `height`, `width`, `length` (number of annotated frames);
- `frames`: `List(Image())`, one image per annotated frame (paths when loaded from disk, bytes in Parquet shards);
- `annotations`: one struct per track with `id`, `category` (`ClassLabel`, 0-based in the order of category ids),
  `category_id` (the file's own id), `segmentations` (one compressed RLE `{size: [h, w], counts: str}` per frame,
  `None` where the object is absent), `areas` and `bboxes` (`[x, y, w, h]`) per frame (`None` where absent) and
  `iscrowd`.

Segmentations may be polygons, uncompressed RLE (`counts` as a list of ints, as in the official train files) or
compressed RLE; all are stored as compressed RLE.
"""

import json
import logging
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from numbers import Real
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow.parquet as pq
from datasets import ClassLabel, Dataset, Features, Image, List, Value
from datasets.table import embed_table_storage
from datasets.utils.py_utils import convert_file_size_to_int
from pycocotools import mask as mask_utils
from tqdm.auto import tqdm

from .categories import CategoryMapping


logger = logging.getLogger(__name__)

REQUIRED_KEYS = ("videos", "categories")
REQUIRED_VIDEO_FIELDS = ("id", "height", "width", "file_names")
REQUIRED_ANNOTATION_FIELDS = ("id", "video_id", "category_id", "segmentations")


class YTVISFormatError(ValueError):
    """An annotation file or frame folder that does not follow the YouTube-VIS layout.

    The message names the file and, where they apply, the video id, the annotation id and the field.
    """


def _where(path: Path, video_id=None, annotation_id=None, field: str | None = None) -> str:
    parts = [str(path)]
    if video_id is not None:
        parts.append(f"video {video_id}")
    if annotation_id is not None:
        parts.append(f"annotation {annotation_id}")
    if field is not None:
        parts.append(f"field '{field}'")
    return ", ".join(parts)


def youtubevis_features(category_names: Sequence[str]) -> Features:
    """The features of a YouTube-VIS dataset whose categories, sorted by id, are named `category_names`."""
    rle = {"size": List(Value("int32"), length=2), "counts": Value("string")}
    return Features(
        {
            "video_id": Value("int64"),
            "video_name": Value("string"),
            "frames": List(Image()),
            "height": Value("int32"),
            "width": Value("int32"),
            "length": Value("int32"),
            "annotations": List(
                {
                    "id": Value("int64"),
                    "category": ClassLabel(names=list(category_names)),
                    "category_id": Value("int64"),
                    "segmentations": List(rle),
                    "areas": List(Value("float64")),
                    "bboxes": List(List(Value("float64"), length=4)),
                    "iscrowd": Value("int8"),
                }
            ),
        }
    )


def decode_segmentation(segmentation: dict | None, height: int, width: int) -> np.ndarray:
    """The `(height, width)` uint8 0/1 mask of one frame's compressed RLE `{size, counts: str}`; zeros for `None`."""
    if segmentation is None:
        return np.zeros((height, width), dtype=np.uint8)
    rle = {"size": list(segmentation["size"]), "counts": segmentation["counts"].encode("ascii")}
    return mask_utils.decode(rle)


def _read_annotation_file(path: Path) -> dict:
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise YTVISFormatError(f"{path}: annotation file not found.") from None
    except json.JSONDecodeError as error:
        raise YTVISFormatError(f"{path}: not valid JSON ({error}).") from None
    if not isinstance(data, dict):
        raise YTVISFormatError(f"{path}: the top level must be an object, got {type(data).__name__}.")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise YTVISFormatError(
            f"{path}: missing top-level key(s) {missing}; a YouTube-VIS file has 'info', 'licenses', 'videos', "
            "'categories' and (train split only) 'annotations'."
        )
    return data


def _load_videos(data: dict, path: Path, frames_dir: Path) -> dict[int, dict]:
    """Checks the `videos` entries and their frame files; returns them by id."""
    videos = {}
    for index, video in enumerate(tqdm(data["videos"], desc="Checking videos and frame files")):
        video_id = video.get("id", f"#{index} (no id)")
        for field in REQUIRED_VIDEO_FIELDS:
            if field not in video:
                raise YTVISFormatError(f"{_where(path, video_id, field=field)}: missing.")
        if video_id in videos:
            raise YTVISFormatError(f"{_where(path, video_id, field='id')}: duplicate video id.")
        file_names = video["file_names"]
        length = video.get("length", len(file_names))
        if len(file_names) != length:
            raise YTVISFormatError(
                f"{_where(path, video_id, field='file_names')}: {len(file_names)} file names but 'length' is {length}."
            )
        frames = [frames_dir / name for name in file_names]
        missing = [frame for frame in frames if not frame.is_file()]
        if missing:
            raise YTVISFormatError(
                f"{_where(path, video_id, field='file_names')}: frame file {missing[0]} does not exist "
                f"({len(missing)} of {length} frames missing; is the frames folder {frames_dir} right?)."
            )
        videos[video_id] = {
            "video_id": video_id,
            "video_name": PurePosixPath(file_names[0]).parent.as_posix() if file_names else "",
            "frames": [str(frame) for frame in frames],
            "height": video["height"],
            "width": video["width"],
            "length": length,
        }
    return videos


def _frame_rle(segmentation, height: int, width: int, where: str, frame: int) -> dict | None:
    """One frame's polygons / uncompressed RLE / compressed RLE as a pycocotools RLE; `None` where absent."""
    if not segmentation:
        return None
    if isinstance(segmentation, dict):
        size, counts = segmentation.get("size"), segmentation.get("counts")
        if size is None or counts is None:
            raise YTVISFormatError(f"{where}: frame {frame}: an RLE needs 'size' and 'counts'.")
        if list(size) != [height, width]:
            raise YTVISFormatError(
                f"{where}: frame {frame}: RLE size {list(size)} differs from the video size [{height}, {width}]."
            )
        if isinstance(counts, list):
            if sum(counts) != height * width:
                raise YTVISFormatError(
                    f"{where}: frame {frame}: uncompressed RLE counts sum to {sum(counts)}, not {height}×{width}."
                )
            return mask_utils.frPyObjects(segmentation, height, width)
        if isinstance(counts, (str, bytes)):
            return {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
        raise YTVISFormatError(f"{where}: frame {frame}: RLE 'counts' must be a list of ints or a string.")
    if isinstance(segmentation, list) and all(isinstance(polygon, list) for polygon in segmentation):
        # As the original loader: polygons with fewer than 3 points are dropped; none left means absent.
        polygons = [polygon for polygon in segmentation if len(polygon) >= 6 and len(polygon) % 2 == 0]
        if not polygons:
            return None
        return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    raise YTVISFormatError(
        f"{where}: frame {frame}: expected an RLE dict, a list of polygons or null, got {type(segmentation).__name__}."
    )


def _per_frame_values(annotation: dict, field: str, computed: list, length: int, size: int | None, where: str):
    """The annotation's `areas`/`bboxes` (checked), or `computed` when the file does not give them."""
    values = annotation.get(field)
    if values is None:
        return computed
    if not isinstance(values, list) or len(values) != length:
        count = len(values) if isinstance(values, list) else type(values).__name__
        raise YTVISFormatError(f"{where}: has {count} entries but the video has {length} frames.")
    for frame, value in enumerate(values):
        if value is None:
            continue
        if size is None:
            valid = isinstance(value, Real)
        else:
            valid = isinstance(value, list) and len(value) == size and all(isinstance(x, Real) for x in value)
        if not valid:
            expected = "a number" if size is None else f"{size} numbers"
            raise YTVISFormatError(f"{where}: frame {frame}: expected {expected} or null, got {value!r}.")
    return values


def _load_track(annotation: dict, index: int, path: Path, videos: dict, categories: CategoryMapping) -> dict:
    """Checks one annotation (track) and returns it in the dataset's layout."""
    annotation_id = annotation.get("id", f"#{index} (no id)")
    video_id = annotation.get("video_id")
    for field in REQUIRED_ANNOTATION_FIELDS:
        if field not in annotation:
            raise YTVISFormatError(f"{_where(path, video_id, annotation_id, field)}: missing.")
    if video_id not in videos:
        raise YTVISFormatError(f"{_where(path, video_id, annotation_id, 'video_id')}: no video has this id.")
    category_id = annotation["category_id"]
    if category_id not in categories.category_ids:
        raise YTVISFormatError(
            f"{_where(path, video_id, annotation_id, 'category_id')}: unknown category id {category_id}; "
            f"the file's categories have ids {list(categories.category_ids)}."
        )
    video = videos[video_id]
    height, width, length = video["height"], video["width"], video["length"]
    segmentations = annotation["segmentations"]
    where = _where(path, video_id, annotation_id, "segmentations")
    if not isinstance(segmentations, list) or len(segmentations) != length:
        count = len(segmentations) if isinstance(segmentations, list) else type(segmentations).__name__
        raise YTVISFormatError(f"{where}: has {count} entries but the video has {length} frames.")
    rles = [_frame_rle(segmentation, height, width, where, frame) for frame, segmentation in enumerate(segmentations)]
    areas = _per_frame_values(
        annotation,
        "areas",
        [None if rle is None else float(mask_utils.area(rle)) for rle in rles],
        length,
        None,
        _where(path, video_id, annotation_id, "areas"),
    )
    bboxes = _per_frame_values(
        annotation,
        "bboxes",
        [None if rle is None else mask_utils.toBbox(rle).tolist() for rle in rles],
        length,
        4,
        _where(path, video_id, annotation_id, "bboxes"),
    )
    return {
        "id": annotation_id,
        "category": categories.category_id_to_label(category_id),
        "category_id": category_id,
        "segmentations": [
            None if rle is None else {"size": [height, width], "counts": rle["counts"].decode("ascii")} for rle in rles
        ],
        "areas": areas,
        "bboxes": bboxes,
        "iscrowd": annotation.get("iscrowd", 0),
    }


def load_youtubevis(
    annotation_file: str | os.PathLike, frames_dir: str | os.PathLike, require_annotations: bool = False
) -> Dataset:
    """Loads a YouTube-VIS / OVIS split (`train.json` + `JPEGImages/`) as a `datasets.Dataset`, one row per video.

    Args:
        annotation_file: the split's annotation JSON.
        frames_dir: the folder that `file_names` are relative to (`.../JPEGImages`).
        require_annotations: refuse files without `annotations` (the official valid/test splits), as training needs.

    Raises:
        YTVISFormatError: on a malformed file or a missing frame, naming the file, video, annotation and field.
    """
    path = Path(annotation_file)
    frames_dir = Path(frames_dir).resolve()
    data = _read_annotation_file(path)
    try:
        categories = CategoryMapping.from_categories(data["categories"])
    except (KeyError, TypeError, ValueError) as error:
        raise YTVISFormatError(f"{_where(path, field='categories')}: {error}") from None
    if require_annotations and not data.get("annotations"):
        raise YTVISFormatError(
            f"{path} has no annotations: it looks like an official valid/test split, whose ground truth is private "
            "(evaluate those on the CodaLab server). Training needs annotated videos; to evaluate locally, hold out "
            "part of the train split."
        )
    videos = _load_videos(data, path, frames_dir)
    seen_ids = set()
    tracks = defaultdict(list)
    for index, annotation in enumerate(tqdm(data.get("annotations", []), desc="Checking annotations")):
        track = _load_track(annotation, index, path, videos, categories)
        if track["id"] in seen_ids:
            raise YTVISFormatError(f"{_where(path, annotation['video_id'], track['id'], 'id')}: duplicate id.")
        seen_ids.add(track["id"])
        tracks[annotation["video_id"]].append(track)
    rows = [{**video, "annotations": tracks[video_id]} for video_id, video in videos.items()]
    return Dataset.from_list(rows, features=youtubevis_features(categories.names))


def _estimated_nbytes(dataset: Dataset) -> int:
    """The dataset's size once its frame files are embedded: Arrow bytes plus the frame files it refers to."""
    table = dataset.with_format("arrow")[:]
    nbytes = table.nbytes
    if "frames" in table.column_names:
        frames = table.column("frames").combine_chunks().flatten()
        for frame_path, has_bytes in zip(
            frames.field("path").to_pylist(), frames.field("bytes").is_valid().to_pylist()
        ):
            if frame_path is not None and not has_bytes:
                nbytes += os.path.getsize(frame_path)
    return nbytes


def write_parquet_shards(
    dataset: Dataset,
    out_dir: str | os.PathLike,
    max_shard_size: int | str = "500MB",
    split: str = "train",
    videos_per_row_group: int = 16,
) -> list[Path]:
    """Writes `dataset` as self-contained Parquet shards `<split>-00000-of-0000N.parquet` (frames embedded as bytes).

    The layout is the one `push_to_hub` writes; `datasets.load_dataset("parquet", data_files=...)` reads it back with
    the same features. Each shard is written under a temporary name and renamed when complete, so an interrupted run
    leaves no partial shard; shards of `split` left from an earlier run with another shard count are removed.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    max_bytes = convert_file_size_to_int(max_shard_size)
    num_shards = max(1, min(len(dataset), math.ceil(_estimated_nbytes(dataset) / max_bytes)))
    bounds = np.linspace(0, len(dataset), num_shards + 1).round().astype(int).tolist()
    schema_metadata = dataset.features.arrow_schema.metadata
    arrow_dataset = dataset.with_format("arrow")
    written = []
    for index in tqdm(range(num_shards), desc="Writing Parquet shards"):
        table = arrow_dataset[bounds[index] : bounds[index + 1]].replace_schema_metadata(schema_metadata)
        table = embed_table_storage(table)
        shard = out_dir / f"{split}-{index:05d}-of-{num_shards:05d}.parquet"
        temporary = shard.with_name(f".{shard.name}.incomplete")
        try:
            pq.write_table(table, temporary, row_group_size=videos_per_row_group)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        os.replace(temporary, shard)
        written.append(shard)
    for stale in out_dir.glob(f"{split}-*-of-*.parquet"):
        if stale not in written:
            stale.unlink()
    return written
