"""The CodaLab submission archive of the YouTubeVIS-2019, YouTubeVIS-2021 and OVIS servers."""

import io
import json
import os
import zipfile
from pathlib import Path

from .records import (
    EvaluationInputError,
    YTVISGroundTruth,
    check_result_record,
    load_ground_truth,
    load_predictions,
    read_json,
)


SUBMISSION_FILE_NAME = "results.json"


def _plain_record(record: dict) -> dict:
    segmentations = [
        None
        if rle is None
        else {
            "size": [int(rle["size"][0]), int(rle["size"][1])],
            "counts": rle["counts"].decode("ascii") if isinstance(rle["counts"], bytes) else rle["counts"],
        }
        for rle in record["segmentations"]
    ]
    return {
        "video_id": int(record["video_id"]),
        "score": float(record["score"]),
        "category_id": int(record["category_id"]),
        "segmentations": segmentations,
    }


def write_submission(
    predictions: str | os.PathLike | list,
    output_path: str | os.PathLike,
    annotations: str | os.PathLike | dict | YTVISGroundTruth | None = None,
) -> Path:
    """Writes result records to a zip holding exactly `results.json`, the layout the CodaLab servers expect.

    Records are checked first. With `annotations` (the split's json, e.g. `valid.json`: it needs no ground-truth
    masks), video ids, frame counts, mask sizes and category ids are checked against it too.
    """
    records = read_json(predictions, "predictions")
    if not isinstance(records, list):
        raise EvaluationInputError("predictions: expected a JSON list of result records")
    if annotations is None:
        for index, record in enumerate(records):
            check_result_record(record, index)
    else:
        if not isinstance(annotations, YTVISGroundTruth):
            annotations = load_ground_truth(annotations, require_annotations=False)
        load_predictions(records, annotations)
    output_path = Path(output_path)
    with (
        zipfile.ZipFile(output_path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open(SUBMISSION_FILE_NAME, "w") as entry,
        io.TextIOWrapper(entry, encoding="utf-8") as text,
    ):
        json.dump([_plain_record(record) for record in records], text)
    return output_path
