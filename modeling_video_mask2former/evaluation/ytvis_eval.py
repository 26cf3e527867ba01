"""The official YouTubeVIS video AP/AR (the `YTVOSeval` of youtubevos/cocoapi), built on pycocotools' COCOeval."""

import contextlib
import io
import os
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.cocoeval import COCOeval

from .records import VideoTrack, YTVISGroundTruth, load_ground_truth, load_predictions


STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
# all, small (0-128²), medium (128²-256²), large (>256²): YouTubeVIS ranges, not COCO's 32²/96².
AREA_RANGES = [[0**2, 1e5**2], [0**2, 128**2], [128**2, 256**2], [256**2, 1e5**2]]


def video_iou(detections: list[VideoTrack], ground_truths: list[VideoTrack]) -> np.ndarray:
    """Spatio-temporal IoU of every (detection, ground truth) pair: Σ_t intersection / Σ_t union.

    A frame where only one side has a mask adds that mask to the union; a pair with an empty union has IoU 0.
    """
    iou = np.zeros((len(detections), len(ground_truths)))
    if not detections or not ground_truths:
        return iou
    detection_areas = np.stack([track.frame_areas for track in detections])
    ground_truth_areas = np.stack([track.frame_areas for track in ground_truths])
    intersection = np.zeros_like(iou)
    for frame in range(detection_areas.shape[1]):
        rows = np.flatnonzero(detection_areas[:, frame])
        columns = np.flatnonzero(ground_truth_areas[:, frame])
        if rows.size == 0 or columns.size == 0:
            continue
        frame_iou = mask_utils.iou(
            [detections[row].segmentations[frame] for row in rows],
            [ground_truths[column].segmentations[frame] for column in columns],
            [0] * columns.size,
        )
        # pycocotools gives i / u per pair; i = iou * (area_d + area_g) / (1 + iou) is an integer, recovered exactly.
        area_sums = detection_areas[rows, frame][:, None] + ground_truth_areas[columns, frame][None, :]
        intersection[np.ix_(rows, columns)] += np.rint(frame_iou * area_sums / (1 + frame_iou))
    union = detection_areas.sum(axis=1)[:, None] + ground_truth_areas.sum(axis=1)[None, :] - intersection
    np.divide(intersection, union, out=iou, where=union > 0)
    return iou


class YTVISeval(COCOeval):
    """pycocotools' COCOeval with a video as the "image".

    Only the video-specific parts are overridden: the instances per (video, category), the spatio-temporal IoU, the
    mean instance areas and the YouTubeVIS area ranges. Matching, accumulation and the summary are pycocotools' own,
    with the same stable (`mergesort`) score sorts as the original, so tied scores keep their input order.
    """

    def __init__(self, ground_truth: YTVISGroundTruth, predictions: list[VideoTrack]):
        super().__init__(iouType="segm")
        self.ground_truth = ground_truth
        self.predictions = predictions
        self.params.imgIds = sorted(ground_truth.videos)
        self.params.catIds = sorted(ground_truth.categories)
        self.params.areaRng = AREA_RANGES
        self.summary_lines = []

    def _prepare(self):
        self._gts = defaultdict(list)
        self._dts = defaultdict(list)
        # Ids only need to be unique and non-zero: pycocotools stores them as match flags.
        for index, track in enumerate(self.ground_truth.tracks, start=1):
            instance = {"id": index, "area": track.area, "iscrowd": int(track.iscrowd), "ignore": track.iscrowd}
            self._gts[track.video_id, track.category_id].append({**instance, "track": track})
        for index, track in enumerate(self.predictions, start=1):
            instance = {"id": index, "area": track.area, "score": track.score, "iscrowd": 0, "track": track}
            self._dts[track.video_id, track.category_id].append(instance)
        self.evalImgs = defaultdict(list)
        self.eval = {}

    def computeIoU(self, video_id: int, category_id: int):
        ground_truths = self._gts[video_id, category_id]
        detections = self._dts[video_id, category_id]
        if not ground_truths and not detections:
            return []
        order = np.argsort([-detection["score"] for detection in detections], kind="mergesort")
        detections = [detections[index]["track"] for index in order[: self.params.maxDets[-1]]]
        return video_iou(detections, [ground_truth["track"] for ground_truth in ground_truths])

    def evaluate(self):
        with contextlib.redirect_stdout(io.StringIO()):
            super().evaluate()

    def accumulate(self, p=None):
        with contextlib.redirect_stdout(io.StringIO()):
            super().accumulate(p)

    def summarize(self):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            super().summarize()
        self.summary_lines = printed.getvalue().splitlines()

    def per_category_ap(self) -> dict[str, float]:
        """AP@[.5:.95] per category name over all areas at 100 detections; -1 for a category without ground truth."""
        precision = self.eval["precision"]
        per_category = {}
        for index, category_id in enumerate(self.params.catIds):
            values = precision[:, :, index, 0, -1]
            values = values[values > -1]
            per_category[self.ground_truth.categories[category_id]] = float(values.mean()) if values.size else -1.0
        return per_category


@dataclass
class YTVISResult:
    """The 12 official numbers (fractions, -1 where nothing is evaluated), per-category AP and the printed summary."""

    stats: dict[str, float]
    per_category_ap: dict[str, float]
    summary_lines: list[str]


def evaluate_ytvis(
    annotations: str | os.PathLike | dict | YTVISGroundTruth, predictions: str | os.PathLike | list
) -> YTVISResult:
    """Evaluates YouTubeVIS result records against a YouTubeVIS/OVIS annotation json with the official metric.

    Args:
        annotations: path to the ground-truth json, its loaded dict, or a [`YTVISGroundTruth`].
        predictions: path to the results json or the list of `{video_id, score, category_id, segmentations}`.
    """
    ground_truth = annotations if isinstance(annotations, YTVISGroundTruth) else load_ground_truth(annotations)
    evaluator = YTVISeval(ground_truth, load_predictions(predictions, ground_truth))
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    stats = dict(zip(STAT_NAMES, (float(value) for value in evaluator.stats)))
    return YTVISResult(stats=stats, per_category_ap=evaluator.per_category_ap(), summary_lines=evaluator.summary_lines)
