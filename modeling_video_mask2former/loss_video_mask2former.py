"""Video Mask2Former matcher and loss: the image Mask2Former criterion applied to `(tracks, frames)` masks."""

from collections.abc import Sequence

import torch
from torch import Tensor
from transformers.models.mask2former.modeling_mask2former import (
    Mask2FormerHungarianMatcher,
    Mask2FormerLoss,
    dice_loss,
    pair_wise_dice_loss,
    pair_wise_sigmoid_cross_entropy_loss,
    sample_point,
    sigmoid_cross_entropy_loss,
)
from transformers.utils import is_accelerate_available, is_scipy_available

from .configuration_video_mask2former import VideoMask2FormerConfig


if is_scipy_available():
    from scipy.optimize import linear_sum_assignment

if is_accelerate_available():
    from accelerate import PartialState
    from accelerate.utils import reduce


def prepare_video_targets(
    frame_class_labels: Sequence[Tensor],
    frame_track_ids: Sequence[Tensor],
    frame_masks: Sequence[Tensor],
    padded_size: tuple[int, int] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """
    Builds the targets of one training clip from per-frame instances, as the original `prepare_targets`.

    Every track has a slot in every frame (`-1` id where it is absent or empty). A track is kept when any frame has
    a valid id; its label is the one of the **last** frame, so a track absent there is trained as the no-object class.

    Args:
        frame_class_labels (`Sequence[torch.Tensor]`):
            Per frame, the class of each slot, of shape `(slots,)`.
        frame_track_ids (`Sequence[torch.Tensor]`):
            Per frame, the track id of each slot (`-1` = absent), of shape `(slots,)`.
        frame_masks (`Sequence[torch.Tensor]`):
            Per frame, the binary masks of shape `(slots, height, width)`.
        padded_size (`tuple[int, int]`, *optional*):
            Size `(height, width)` of the padded input frames; masks are zero-padded at the bottom and right.

    Returns:
        `tuple[torch.Tensor, torch.Tensor, torch.Tensor]`: `mask_labels` of shape `(tracks, frames, height, width)`
        (float 0/1), `class_labels` of shape `(tracks,)` and `track_ids` of shape `(tracks, frames)`.
    """
    height, width = padded_size if padded_size is not None else frame_masks[0].shape[-2:]
    num_slots = len(frame_track_ids[0])
    masks = torch.zeros(
        (num_slots, len(frame_masks), height, width), dtype=torch.bool, device=frame_masks[0].device
    )
    for frame, frame_mask in enumerate(frame_masks):
        masks[:, frame, : frame_mask.shape[-2], : frame_mask.shape[-1]] = frame_mask.bool()
    track_ids = torch.stack(list(frame_track_ids), dim=1)
    keep = (track_ids != -1).any(dim=1)
    return masks[keep].float(), frame_class_labels[-1][keep], track_ids[keep]


class VideoMask2FormerHungarianMatcher(Mask2FormerHungarianMatcher):
    """
    Hungarian matching of queries to tracks with a video-level cost, as the original `VideoHungarianMatcher`.

    One set of `num_points` random points per video is shared by all queries, tracks and frames; the mask (sigmoid
    cross-entropy) and dice costs are computed over the `frames * num_points` sampled values of each query and track.
    """

    @torch.no_grad()
    def compute_costs(
        self, masks_queries_logits: Tensor, class_queries_logits: Tensor, mask_labels: Tensor, class_labels: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """
        Cost matrices of one video. Draws the video's point set (one `torch.rand` call).

        Args:
            masks_queries_logits (`torch.Tensor`): Mask logits of shape `(queries, frames, height, width)`.
            class_queries_logits (`torch.Tensor`): Class logits of shape `(queries, num_labels + 1)`.
            mask_labels (`torch.Tensor`): Target masks of shape `(tracks, frames, height, width)`.
            class_labels (`torch.Tensor`): Target classes of shape `(tracks,)`.

        Returns:
            `tuple[torch.Tensor, torch.Tensor, torch.Tensor]`: the total cost, the mask cost and the dice cost, each of
            shape `(queries, tracks)`.
        """
        cost_class = -class_queries_logits.softmax(-1)[:, class_labels]
        target_masks = mask_labels.to(masks_queries_logits)
        point_coordinates = torch.rand(1, self.num_points, 2, device=masks_queries_logits.device)
        # the frames are the channels of `sample_point`: each query or track becomes a (frames * num_points) vector
        target_masks = sample_point(
            target_masks, point_coordinates.repeat(target_masks.shape[0], 1, 1), align_corners=False
        ).flatten(1)
        pred_masks = sample_point(
            masks_queries_logits, point_coordinates.repeat(masks_queries_logits.shape[0], 1, 1), align_corners=False
        ).flatten(1)
        # as the original, the mask costs are computed in float32 even under mixed precision
        with torch.autocast(device_type=pred_masks.device.type, enabled=False):
            pred_masks, target_masks = pred_masks.float(), target_masks.float()
            cost_mask = pair_wise_sigmoid_cross_entropy_loss(pred_masks, target_masks)
            cost_dice = pair_wise_dice_loss(pred_masks, target_masks)
        cost_matrix = self.cost_mask * cost_mask + self.cost_class * cost_class + self.cost_dice * cost_dice
        return cost_matrix, cost_mask, cost_dice

    @torch.no_grad()
    def forward(
        self,
        masks_queries_logits: Tensor,
        class_queries_logits: Tensor,
        mask_labels: list[Tensor],
        class_labels: list[Tensor],
    ) -> list[tuple[Tensor, Tensor]]:
        """
        Args:
            masks_queries_logits (`torch.Tensor`): Mask logits of shape `(batch, queries, frames, height, width)`.
            class_queries_logits (`torch.Tensor`): Class logits of shape `(batch, queries, num_labels + 1)`.
            mask_labels (`list[torch.Tensor]`): Per video, target masks of shape `(tracks, frames, height, width)`.
            class_labels (`list[torch.Tensor]`): Per video, target classes of shape `(tracks,)`.

        Returns:
            `list[tuple[torch.Tensor, torch.Tensor]]`: per video, the matched query indices (ascending) and the
            matched track indices, each of shape `(min(queries, tracks),)`.
        """
        indices = []
        for video_masks, video_classes, video_mask_labels, video_class_labels in zip(
            masks_queries_logits, class_queries_logits, mask_labels, class_labels
        ):
            cost_matrix = self.compute_costs(video_masks, video_classes, video_mask_labels, video_class_labels)[0]
            # NaN and inf costs are only matched when nothing else is left, as in the image matcher
            max_value = torch.finfo(cost_matrix.dtype).max
            cost_matrix = torch.nan_to_num(cost_matrix, nan=max_value, posinf=max_value, neginf=max_value)
            query_indices, track_indices = linear_sum_assignment(cost_matrix.cpu())
            indices.append(
                (torch.as_tensor(query_indices, dtype=torch.int64), torch.as_tensor(track_indices, dtype=torch.int64))
            )
        return indices


class VideoMask2FormerLoss(Mask2FormerLoss):
    """
    The original `VideoSetCriterion`: video Hungarian matching, then the class loss per query and the mask losses on
    importance-sampled points of every matched (track, frame) pair, repeated for each auxiliary prediction.

    Inputs are the image criterion's with video shapes: `masks_queries_logits` of shape
    `(batch, queries, frames, height, width)` and `mask_labels` a list of `(tracks, frames, height, width)` float 0/1
    masks at the padded input size. The returned unweighted terms are `loss_cross_entropy`, `loss_mask`, `loss_dice`
    and, for auxiliary prediction `i`, the same names suffixed with `_i`.

    Random points come from `torch.rand` in the original's order: per layer (final, then each auxiliary prediction)
    one point set per video for the matcher, then the oversampled and the uniform points of the mask losses. With the
    same generator state, the draws and hence the losses are the original's.
    """

    def __init__(self, config: VideoMask2FormerConfig, weight_dict: dict[str, float]):
        super().__init__(config, weight_dict)
        self.matcher = VideoMask2FormerHungarianMatcher(
            cost_class=config.class_weight,
            cost_mask=config.mask_weight,
            cost_dice=config.dice_weight,
            num_points=self.num_points,
        )

    def loss_masks(
        self,
        masks_queries_logits: Tensor,
        mask_labels: list[Tensor],
        indices: list[tuple[Tensor, Tensor]],
        num_masks: Tensor,
    ) -> dict[str, Tensor]:
        """
        Sigmoid cross-entropy and dice losses of the matched masks, each (track, frame) sampled as its own image.

        Both sum over the `tracks * frames` rows and divide by `num_masks` (the number of tracks), so the dice is per
        frame, as in the original.

        Args:
            masks_queries_logits (`torch.Tensor`): Mask logits of shape `(batch, queries, frames, height, width)`.
            mask_labels (`list[torch.Tensor]`): Per video, target masks of shape `(tracks, frames, height, width)`.
            indices (`list[tuple[torch.Tensor, torch.Tensor]]`): The matcher's output.
            num_masks (`torch.Tensor`): Number of tracks used for normalization.

        Returns:
            `dict[str, torch.Tensor]`: `loss_mask` and `loss_dice`.
        """
        pred_masks = masks_queries_logits[self._get_predictions_permutation_indices(indices)]
        target_masks = torch.cat([labels[tracks] for labels, (_, tracks) in zip(mask_labels, indices)])
        # (matched, frames, height, width) -> (matched * frames, 1, height, width)
        pred_masks = pred_masks.flatten(0, 1)[:, None]
        target_masks = target_masks.to(pred_masks).flatten(0, 1)[:, None]

        with torch.no_grad():
            point_coordinates = self.sample_points_using_uncertainty(
                pred_masks,
                self.calculate_uncertainty,
                self.num_points,
                self.oversample_ratio,
                self.importance_sample_ratio,
            )
            point_labels = sample_point(target_masks, point_coordinates, align_corners=False).squeeze(1)
        point_logits = sample_point(pred_masks, point_coordinates, align_corners=False).squeeze(1)

        return {
            "loss_mask": sigmoid_cross_entropy_loss(point_logits, point_labels, num_masks),
            "loss_dice": dice_loss(point_logits, point_labels, num_masks),
        }

    def get_num_masks(self, class_labels: list[Tensor], device: torch.device) -> Tensor:
        """
        Number of tracks in the batch, averaged over processes and clamped at 1, as the original.

        The image loss all-reduces with accelerate's default mean and then divides by the world size again.
        """
        num_masks = torch.as_tensor(sum(len(classes) for classes in class_labels), dtype=torch.float, device=device)
        if is_accelerate_available() and PartialState._shared_state != {}:
            num_masks = reduce(num_masks, reduction="mean")
        return torch.clamp(num_masks, min=1)


__all__ = ["VideoMask2FormerHungarianMatcher", "VideoMask2FormerLoss", "prepare_video_targets"]
