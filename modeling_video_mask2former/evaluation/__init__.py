"""The official YouTubeVIS/OVIS video AP/AR on pycocotools, result-record validation and CodaLab submissions."""

from .records import EvaluationInputError, VideoTrack, YTVISGroundTruth, load_ground_truth, load_predictions
from .submission import write_submission
from .ytvis_eval import STAT_NAMES, YTVISeval, YTVISResult, evaluate_ytvis, video_iou


__all__ = [
    "STAT_NAMES",
    "EvaluationInputError",
    "VideoTrack",
    "YTVISGroundTruth",
    "YTVISResult",
    "YTVISeval",
    "evaluate_ytvis",
    "load_ground_truth",
    "load_predictions",
    "video_iou",
    "write_submission",
]
