"""Parity of the video matcher and loss with the original `VideoSetCriterion` (tiny_r50 training case)."""

import os
import socket
import types
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from accelerate import PartialState
from safetensors.torch import load_file
from transformers import Mask2FormerForUniversalSegmentation

from modeling_video_mask2former.configuration_video_mask2former import VideoMask2FormerConfig
from modeling_video_mask2former.loss_video_mask2former import (
    VideoMask2FormerHungarianMatcher,
    VideoMask2FormerLoss,
    prepare_video_targets,
)


FIXTURE = Path(__file__).parent / "fixtures" / "loss" / "loss_case.safetensors"
CONFIG = VideoMask2FormerConfig(num_labels=40)
WEIGHT_DICT = {"loss_cross_entropy": 2.0, "loss_mask": 5.0, "loss_dice": 5.0}
LAYERS = ["final"] + [f"aux{i}" for i in range(9)]
NUM_VIDEOS = 2
REFERENCE_NUM_MASKS = 5.0
REFERENCE_TOTAL = 357.3017578125


def reference_key(key):
    return key.replace("loss_cross_entropy", "loss_ce")


@pytest.fixture(scope="module")
def case():
    return load_file(FIXTURE)


def criterion_inputs(case, requires_grad=False):
    def logits(name):
        return case[name].clone().requires_grad_(requires_grad)

    return {
        "masks_queries_logits": logits("outputs.pred_masks"),
        "class_queries_logits": logits("outputs.pred_logits"),
        "mask_labels": [case[f"targets.{video}.masks"].float() for video in range(NUM_VIDEOS)],
        "class_labels": [case[f"targets.{video}.labels"] for video in range(NUM_VIDEOS)],
        "auxiliary_predictions": [
            {
                "masks_queries_logits": logits(f"outputs.aux.{i}.pred_masks"),
                "class_queries_logits": logits(f"outputs.aux.{i}.pred_logits"),
            }
            for i in range(9)
        ],
    }


def replay(case, function, *args, **kwargs):
    """Calls `function` with the global RNG in the state the original had right before its criterion."""
    with torch.random.fork_rng(devices=[]):
        torch.set_rng_state(case["random.00.rng_state_before"])
        return function(*args, **kwargs)


@pytest.fixture(scope="module")
def recorded(case):
    """One criterion call with the recorded random stream; keeps every layer's matcher indices and costs."""
    criterion = VideoMask2FormerLoss(CONFIG, WEIGHT_DICT)
    indices, costs = [], []
    criterion.matcher.register_forward_hook(lambda module, args, output: indices.append(output))
    compute_costs = criterion.matcher.compute_costs

    def record_costs(*args):
        costs.append(compute_costs(*args))
        return costs[-1]

    criterion.matcher.compute_costs = record_costs
    losses = replay(case, criterion, **criterion_inputs(case))
    return types.SimpleNamespace(losses=losses, indices=indices, costs=costs)


def test_matcher_indices(case, recorded):
    assert len(recorded.indices) == len(LAYERS)
    for layer, layer_indices in zip(LAYERS, recorded.indices):
        for video, (src_idx, tgt_idx) in enumerate(layer_indices):
            torch.testing.assert_close(src_idx, case[f"matcher.{layer}.{video}.src_idx"], rtol=0, atol=0)
            torch.testing.assert_close(tgt_idx, case[f"matcher.{layer}.{video}.tgt_idx"], rtol=0, atol=0)


def test_matcher_costs(case, recorded):
    # observed: C 2.9e-5 (1.1e-6 relative), cost_mask 5.7e-6, cost_dice 0. transformers' pair-wise BCE divides by
    # the point count before its matmul, the original after.
    assert len(recorded.costs) == len(LAYERS) * NUM_VIDEOS
    for call, (cost_matrix, cost_mask, cost_dice) in enumerate(recorded.costs):
        prefix = f"matcher.{LAYERS[call // NUM_VIDEOS]}.{call % NUM_VIDEOS}"
        torch.testing.assert_close(cost_matrix, case[f"{prefix}.C"], rtol=0, atol=1e-4)
        torch.testing.assert_close(cost_mask, case[f"{prefix}.cost_mask"], rtol=0, atol=2e-5)
        torch.testing.assert_close(cost_dice, case[f"{prefix}.cost_dice"], rtol=0, atol=1e-6)


def test_unweighted_losses(case, recorded):
    assert len(recorded.losses) == 3 * len(LAYERS)
    for key, loss in recorded.losses.items():
        torch.testing.assert_close(loss, case[f"losses.unweighted.{reference_key(key)}"], rtol=1e-5, atol=0)


def test_weighted_losses_and_total(case):
    # the model weights the criterion's terms with the image model's `get_loss_dict`
    model = types.SimpleNamespace(criterion=VideoMask2FormerLoss(CONFIG, WEIGHT_DICT), weight_dict=WEIGHT_DICT)
    losses = replay(case, Mask2FormerForUniversalSegmentation.get_loss_dict, model, **criterion_inputs(case))
    for key, loss in losses.items():
        torch.testing.assert_close(loss, case[f"losses.weighted.{reference_key(key)}"], rtol=1e-5, atol=0)
    torch.testing.assert_close(sum(losses.values()), case["losses.total"], rtol=1e-5, atol=0)
    assert case["losses.total"].item() == REFERENCE_TOTAL


def test_num_masks(case):
    criterion = VideoMask2FormerLoss(CONFIG, WEIGHT_DICT)
    class_labels = criterion_inputs(case)["class_labels"]
    assert criterion.get_num_masks(class_labels, torch.device("cpu")).item() == REFERENCE_NUM_MASKS
    empty = [torch.zeros(0, dtype=torch.long)] * NUM_VIDEOS
    assert criterion.get_num_masks(empty, torch.device("cpu")).item() == 1.0


def _num_masks_worker(rank, world_size, port, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size))
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank))
    PartialState._reset_state()  # a forked worker inherits the parent's (single-process) state, if it made one
    state = PartialState(backend="gloo", cpu=True)
    class_labels = [torch.zeros(3 + 2 * rank, dtype=torch.long)]
    queue.put(VideoMask2FormerLoss(CONFIG, WEIGHT_DICT).get_num_masks(class_labels, torch.device("cpu")).item())
    state.destroy_process_group()


def test_num_masks_is_averaged_over_processes():
    # 3 and 5 tracks on two processes: the original normalizes both by (3 + 5) / 2
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    queue = mp.get_context("fork").SimpleQueue()
    mp.start_processes(_num_masks_worker, args=(2, port, queue), nprocs=2, start_method="fork")
    assert [queue.get(), queue.get()] == [4.0, 4.0]


def test_gradients_reach_both_logits(case):
    inputs = criterion_inputs(case, requires_grad=True)
    losses = replay(case, VideoMask2FormerLoss(CONFIG, WEIGHT_DICT), **inputs)
    sum(losses.values()).backward()
    predictions = [inputs, *inputs["auxiliary_predictions"]]
    for prediction in predictions:
        for name in ("masks_queries_logits", "class_queries_logits"):
            grad = prediction[name].grad
            assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_empty_weight_buffer():
    criterion = VideoMask2FormerLoss(CONFIG, WEIGHT_DICT)
    assert list(criterion.state_dict()) == ["empty_weight"]
    torch.testing.assert_close(criterion.empty_weight, torch.tensor([1.0] * 40 + [0.1]))


def test_video_without_tracks():
    config = VideoMask2FormerConfig(num_labels=5, train_num_points=64)
    masks_queries_logits = torch.randn(2, 4, 3, 8, 8, requires_grad=True)
    class_queries_logits = torch.randn(2, 4, 6, requires_grad=True)
    mask_labels = [torch.zeros(0, 3, 32, 32), torch.ones(2, 3, 32, 32)]
    class_labels = [torch.zeros(0, dtype=torch.long), torch.tensor([1, 2])]
    losses = VideoMask2FormerLoss(config, WEIGHT_DICT)(
        masks_queries_logits, class_queries_logits, mask_labels, class_labels
    )
    sum(losses.values()).backward()
    assert all(torch.isfinite(loss) for loss in losses.values())
    assert masks_queries_logits.grad[0].abs().sum() == 0 and masks_queries_logits.grad[1].abs().sum() > 0


def test_prepare_video_targets(case):
    for video in range(NUM_VIDEOS):
        frames = [f"video{video}.frame{frame}" for frame in range(2)]
        mask_labels, class_labels, track_ids = prepare_video_targets(
            [case[f"{frame}.gt_classes"] for frame in frames],
            [case[f"{frame}.gt_ids"] for frame in frames],
            [case[f"{frame}.gt_masks"] for frame in frames],
        )
        torch.testing.assert_close(mask_labels, case[f"targets.{video}.masks"].float(), rtol=0, atol=0)
        torch.testing.assert_close(class_labels, case[f"targets.{video}.labels"], rtol=0, atol=0)
        torch.testing.assert_close(track_ids, case[f"targets.{video}.ids"], rtol=0, atol=0)
    # track 103 is absent in the last frame: kept, labelled no-object (40); the all-empty track 104 is dropped
    assert case["targets.0.labels"].tolist() == [4, 17, 40]


def test_prepare_video_targets_pads_bottom_right(case):
    frames = [f"video1.frame{frame}" for frame in range(2)]
    mask_labels, _, _ = prepare_video_targets(
        torch.stack([case[f"{frame}.gt_classes"] for frame in frames]),
        torch.stack([case[f"{frame}.gt_ids"] for frame in frames]),
        [case[f"{frame}.gt_masks"] for frame in frames],
        padded_size=(100, 130),
    )
    assert mask_labels.shape == (2, 2, 100, 130)
    torch.testing.assert_close(mask_labels[..., :96, :128], case["targets.1.masks"].float(), rtol=0, atol=0)
    assert mask_labels[..., 96:, :].sum() == 0 and mask_labels[..., 128:].sum() == 0


def test_matcher_costs_are_float32_under_autocast():
    matcher = VideoMask2FormerHungarianMatcher(cost_class=2.0, cost_mask=5.0, cost_dice=5.0, num_points=64)
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 2, 8, 8, generator=generator)
    classes = torch.randn(4, 6, generator=generator)
    targets = (torch.rand(3, 2, 8, 8, generator=generator) > 0.5).float()
    labels = torch.tensor([0, 2, 4])
    torch.manual_seed(0)
    expected = matcher.compute_costs(logits, classes, targets, labels)
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        actual = matcher.compute_costs(logits.bfloat16(), classes.bfloat16(), targets, labels)
    assert actual[1].dtype == torch.float32 and actual[2].dtype == torch.float32
    torch.testing.assert_close(actual[1], expected[1], atol=0.05, rtol=0.02)
