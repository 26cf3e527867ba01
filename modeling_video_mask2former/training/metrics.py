"""YouTube-VIS AP during training: post-processing per video into RLE result records, and the official metric."""

import os
from collections.abc import Sequence

import torch

from ..evaluation import STAT_NAMES, YTVISGroundTruth, evaluate_ytvis, load_ground_truth
from ..results import tracks_to_ytvis_results
from ..video_processing_video_mask2former import VideoMask2FormerVideoProcessor


class YouTubeVISEvaluator:
    """
    Accumulates result records of whole videos and computes the official YouTube-VIS AP/AR against a ground-truth
    annotation file. Only compressed-RLE records are kept (one list per video), never mask logits.

    [`VideoMask2FormerTrainer`] drives it: per evaluation batch [`predict`] (local videos), `gather_for_metrics`
    across processes, [`add`]; at the end [`compute`].

    Args:
        annotations (`str`, `os.PathLike`, `dict` or `YTVISGroundTruth`):
            Ground truth of the evaluation split (a YouTube-VIS json with annotations). Model label `i` is the `i`-th
            category in ascending id order, as in training.
        video_processor ([`VideoMask2FormerVideoProcessor`]):
            Its `post_process_video_instance_segmentation` turns model outputs into tracks.
        top_k (`int`, *optional*, defaults to 10):
            Tracks kept per video (the original keeps 10).
    """

    def __init__(
        self,
        annotations: str | os.PathLike | dict | YTVISGroundTruth,
        video_processor: VideoMask2FormerVideoProcessor,
        top_k: int = 10,
    ):
        self.ground_truth = (
            annotations if isinstance(annotations, YTVISGroundTruth) else load_ground_truth(annotations)
        )
        self.video_processor = video_processor
        self.top_k = top_k
        self.label_to_category_id = sorted(self.ground_truth.categories)
        self.records: dict[int, list[dict]] = {}

    @property
    def num_videos(self) -> int:
        """Videos with records accumulated since the last [`reset`]."""
        return len(self.records)

    def reset(self) -> None:
        self.records = {}

    def predict(
        self,
        outputs,
        video_ids: Sequence[int],
        resized_sizes: torch.Tensor,
        original_sizes: torch.Tensor,
    ) -> list[tuple[int, list[dict]]]:
        """
        Result records of one batch of whole videos.

        Args:
            outputs: model outputs with `class_queries_logits` `(batch, Q, K + 1)` and `masks_queries_logits`
                `(batch, Q, T, Hp / 4, Wp / 4)`.
            video_ids (`Sequence[int]`): the videos' ids in the annotations.
            resized_sizes (`torch.Tensor` of shape `(batch, 2)`): `(height, width)` after the test-time resize.
            original_sizes (`torch.Tensor` of shape `(batch, 2)`): `(height, width)` of the annotated frames.

        Returns:
            `list[tuple[int, list[dict]]]`: per video, its id and its records
            `{"video_id", "score", "category_id", "segmentations"}`, masks at the original size.
        """
        tracks = self.video_processor.post_process_video_instance_segmentation(
            outputs, target_sizes=original_sizes, resized_sizes=resized_sizes, top_k=self.top_k
        )
        return [
            (video_id, tracks_to_ytvis_results(video_tracks, video_id, self.label_to_category_id))
            for video_id, video_tracks in zip(video_ids, tracks)
        ]

    def add(self, records: Sequence[tuple[int, list[dict]]]) -> None:
        """Stores per-video records (from [`predict`], gathered from all processes); a repeat replaces its video."""
        for video_id, video_records in records:
            self.records[video_id] = video_records

    def compute(self) -> dict[str, float]:
        """
        The 12 official numbers `AP`, `AP50`, `AP75`, `APs`, `APm`, `APl`, `AR1`, `AR10`, `AR100`, `ARs`, `ARm`,
        `ARl` (fractions; -1 where nothing is evaluated) over the accumulated records, then [`reset`]. Videos of the
        annotations without records count as videos without detections.
        """
        records = [record for video_records in self.records.values() for record in video_records]
        self.reset()
        result = evaluate_ytvis(self.ground_truth, records)
        return {name: result.stats[name] for name in STAT_NAMES}


__all__ = ["YouTubeVISEvaluator"]
