"""The official YouTubeVIS metric: parity with the original `YTVOSeval`, definitions, validation, CLI, submission."""

import copy
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from modeling_video_mask2former import cli
from modeling_video_mask2former.evaluation import (
    STAT_NAMES,
    EvaluationInputError,
    evaluate_ytvis,
    load_ground_truth,
    load_predictions,
    video_iou,
    write_submission,
)


FIXTURES = Path(__file__).parent / "fixtures" / "eval"
EXPECTED = json.loads((FIXTURES / "eval_expected.json").read_text())
CASES = ["easy", "medium", "hard"]
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def gt_path(case):
    return FIXTURES / f"eval_{case}_gt.json"


def pred_path(case):
    return FIXTURES / f"eval_{case}_pred.json"


def encode(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def box(height, width, top, left, bottom, right) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[top:bottom, left:right] = 1
    return mask


def make_dataset(videos, tracks, num_categories=2):
    """A YouTubeVIS json; `videos` is [(height, width, frames)], `tracks` is [(video_id, category_id, masks)]."""
    return {
        "videos": [
            {"id": index, "height": height, "width": width, "length": frames}
            for index, (height, width, frames) in enumerate(videos, start=1)
        ],
        "categories": [{"id": index, "name": f"class{index}"} for index in range(1, num_categories + 1)],
        "annotations": [
            {
                "id": index,
                "video_id": video_id,
                "category_id": category_id,
                "iscrowd": 0,
                "segmentations": [None if mask is None else encode(mask) for mask in masks],
                "areas": [None if mask is None else int(mask.sum()) for mask in masks],
            }
            for index, (video_id, category_id, masks) in enumerate(tracks, start=1)
        ],
    }


def make_prediction(video_id, category_id, score, masks) -> dict:
    segmentations = [None if mask is None else encode(mask) for mask in masks]
    return {"video_id": video_id, "category_id": category_id, "score": score, "segmentations": segmentations}


def brute_force_iou(masks_a, masks_b) -> float:
    intersection = union = 0
    for mask_a, mask_b in zip(masks_a, masks_b):
        a = np.zeros(0, bool) if mask_a is None else mask_a.astype(bool)
        b = np.zeros(0, bool) if mask_b is None else mask_b.astype(bool)
        if a.size and b.size:
            intersection += int((a & b).sum())
            union += int((a | b).sum())
        else:
            union += int(a.sum()) + int(b.sum())
    return intersection / union if union else 0.0


# Parity with the original evaluator on the reference fixtures.


@pytest.mark.parametrize("case", CASES)
def test_stats_match_original_evaluator(case):
    result = evaluate_ytvis(gt_path(case), pred_path(case))
    expected = EXPECTED[case]
    assert list(result.stats) == list(STAT_NAMES)
    np.testing.assert_allclose(list(result.stats.values()), expected["stats_list"], rtol=0, atol=1e-9)
    assert result.summary_lines == expected["printed_summary"]
    for name, value in expected["per_category_AP_x100"].items():
        assert result.per_category_ap[name] * 100 == pytest.approx(value, abs=1e-9)


@pytest.mark.parametrize("case", CASES)
def test_ground_truth_areas_match_original_evaluator(case):
    data = json.loads(gt_path(case).read_text())
    tracks = load_ground_truth(data).tracks
    areas = {str(annotation["id"]): track.area for annotation, track in zip(data["annotations"], tracks)}
    assert areas == pytest.approx(EXPECTED[case]["gt_avg_area_by_ann_id"], abs=1e-9)


@pytest.mark.parametrize("case", CASES)
def test_cli_json_matches_original_evaluator(case, capsys):
    exit_code = cli.main(
        ["evaluate", "--annotations", str(gt_path(case)), "--predictions", str(pred_path(case)), "--json"]
    )
    output = json.loads(capsys.readouterr().out)
    assert exit_code == 0
    assert list(output) == list(STAT_NAMES)
    np.testing.assert_allclose(list(output.values()), EXPECTED[case]["stats_list"], rtol=0, atol=1e-9)


def test_cli_per_category_table_and_json(capsys):
    arguments = ["evaluate", "--annotations", str(gt_path("medium")), "--predictions", str(pred_path("medium"))]
    assert cli.main(arguments + ["--per-category"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["AP", "0.5941"]
    assert table[5].split() == ["APl", "-1.0000"]
    assert table[12:] == [
        "AP-person        0.4678",
        "AP-giant_panda   0.6629",
        "AP-lizard        0.8456",
        "AP-parrot        0.4000",
    ]

    assert cli.main(arguments + ["--per-category", "--json"]) == 0
    output = json.loads(capsys.readouterr().out)
    assert output["AP-lizard"] * 100 == pytest.approx(EXPECTED["medium"]["per_category_AP_x100"]["lizard"], abs=1e-9)
    assert len(output) == 12 + 4


@pytest.mark.parametrize(
    "annotations, predictions, message",
    [
        ("missing.json", "medium_pred", "No such file or directory"),
        ("medium_gt", "hard_pred", "record 0 (video_id 1): 'segmentations' has 3 entries, the video has 10 frames"),
        ("medium_pred", "medium_pred", "expected a YouTubeVIS json object with 'videos' and 'categories'"),
        ("medium_gt", "not_json", "is not valid JSON"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_code_2(annotations, predictions, message, tmp_path, capsys):
    (tmp_path / "not_json").write_text("[{")

    def resolve(name):
        case, _, kind = name.partition("_")
        return str(FIXTURES / f"eval_{case}_{kind}.json") if case in CASES else str(tmp_path / name)

    exit_code = cli.main(["evaluate", "--annotations", resolve(annotations), "--predictions", resolve(predictions)])
    captured = capsys.readouterr()
    assert exit_code == 2
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.err.startswith("video-mask2former evaluate: error: ") and message in captured.err


# Input formats.


def test_null_and_encoded_empty_frames_are_equivalent():
    predictions = json.loads(pred_path("hard").read_text())
    with_nulls = copy.deepcopy(predictions)
    replaced = 0
    for record in with_nulls:
        for frame, rle in enumerate(record["segmentations"]):
            if mask_utils.area(rle) == 0:
                record["segmentations"][frame] = None
                replaced += 1
    assert replaced == 53
    assert evaluate_ytvis(gt_path("hard"), with_nulls).stats == evaluate_ytvis(gt_path("hard"), predictions).stats


def test_ground_truth_as_compressed_rle_gives_the_same_stats():
    data = json.loads(gt_path("hard").read_text())
    for annotation in data["annotations"]:
        for frame, segmentation in enumerate(annotation["segmentations"]):
            if segmentation is not None:
                height, width = segmentation["size"]
                rle = mask_utils.frPyObjects(segmentation, height, width)
                annotation["segmentations"][frame] = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
    assert isinstance(data["annotations"][0]["segmentations"][0]["counts"], str)
    assert evaluate_ytvis(data, pred_path("hard")).stats == pytest.approx(EXPECTED["hard"]["stats"], abs=1e-9)


def test_ground_truth_polygons_and_missing_areas():
    polygon = [[2.0, 2.0, 14.0, 2.0, 14.0, 10.0, 2.0, 10.0]]
    data = make_dataset([(16, 20, 2)], [])
    data["annotations"] = [{"id": 7, "video_id": 1, "category_id": 1, "segmentations": [polygon, None]}]
    track = load_ground_truth(data).tracks[0]
    expected_rle = mask_utils.merge(mask_utils.frPyObjects(polygon, 16, 20))
    assert track.segmentations[0]["counts"] == expected_rle["counts"] and track.segmentations[1] is None
    assert track.area == mask_utils.area(expected_rle)
    perfect = {"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [track.segmentations[0], None]}
    assert evaluate_ytvis(data, [perfect]).stats["AP"] == pytest.approx(1.0, abs=1e-12)


# Official definitions the fixtures do not cover.


def test_instance_area_is_mean_of_non_null_non_zero_frame_areas():
    data = make_dataset(
        [(8, 8, 4)], [(1, 1, [None, box(8, 8, 0, 0, 1, 1), box(8, 8, 0, 0, 0, 0), box(8, 8, 0, 0, 3, 1)])]
    )
    data["annotations"][0]["areas"] = [None, 100, 0, 300]
    assert load_ground_truth(data).tracks[0].area == 200.0
    prediction = make_prediction(
        1, 1, 0.5, [box(8, 8, 0, 0, 2, 2), None, box(8, 8, 0, 0, 0, 0), box(8, 8, 0, 0, 1, 1)]
    )
    assert load_predictions([prediction], load_ground_truth(data))[0].area == 2.5


def test_video_without_predictions_counts_as_missed():
    mask = box(10, 10, 2, 2, 6, 6)
    data = make_dataset([(10, 10, 1), (10, 10, 1)], [(1, 1, [mask]), (2, 1, [mask])], num_categories=1)
    stats = evaluate_ytvis(data, [make_prediction(1, 1, 0.9, [mask])]).stats
    # Precision 1 up to recall 0.5 (51 of the 101 recall points), nothing beyond.
    assert stats["AP"] == pytest.approx(51 / 101, abs=1e-12)
    assert stats["AR100"] == stats["AR1"] == 0.5
    assert stats["APm"] == stats["APl"] == stats["ARm"] == stats["ARl"] == -1


def test_no_predictions_at_all_gives_zero():
    mask = box(10, 10, 2, 2, 6, 6)
    stats = evaluate_ytvis(make_dataset([(10, 10, 1)], [(1, 1, [mask])]), []).stats
    assert stats == {name: 0.0 if name[-1] not in "ml" else -1.0 for name in STAT_NAMES}


def test_category_without_ground_truth_is_minus_one_and_left_out():
    mask = box(10, 10, 2, 2, 6, 6)
    data = make_dataset([(10, 10, 1)], [(1, 1, [mask])], num_categories=2)
    predictions = [make_prediction(1, 2, 0.99, [mask]), make_prediction(1, 1, 0.5, [mask])]
    result = evaluate_ytvis(data, predictions)
    assert result.per_category_ap == pytest.approx({"class1": 1.0, "class2": -1.0}, abs=1e-12)
    assert result.stats["AP"] == pytest.approx(1.0, abs=1e-12) and result.stats["AR1"] == 1.0


def test_tied_scores_keep_input_order_within_video_and_category():
    ground_truth = box(4, 16, 0, 0, 4, 16)
    data = make_dataset([(4, 16, 1)], [(1, 1, [ground_truth])], num_categories=1)
    good = make_prediction(1, 1, 0.5, [box(4, 16, 0, 0, 4, 13)])  # IoU 13/16 = 0.8125
    fair = make_prediction(1, 1, 0.5, [box(4, 16, 0, 0, 4, 10)])  # IoU 10/16 = 0.625
    good_first = evaluate_ytvis(data, [good, fair]).stats
    fair_first = evaluate_ytvis(data, [fair, good]).stats
    # good first: .50-.80 matched at rank 1. fair first: .50-.60 at rank 1, .65-.80 at rank 2 (precision 1/2).
    assert good_first["AP"] == pytest.approx(0.7, abs=1e-12) and good_first["AR1"] == pytest.approx(0.7, abs=1e-12)
    assert fair_first["AP"] == pytest.approx(0.5, abs=1e-12) and fair_first["AR1"] == pytest.approx(0.3, abs=1e-12)


@pytest.mark.parametrize("matching_index, expected_ap", [(0, 1.0), (99, 0.01), (100, 0.0)])
def test_tied_scores_at_the_max_detections_cut(matching_index, expected_ap):
    ground_truth = box(8, 8, 0, 0, 4, 4)
    data = make_dataset([(8, 8, 1)], [(1, 1, [ground_truth])], num_categories=1)
    miss = make_prediction(1, 1, 0.5, [box(8, 8, 4, 4, 8, 8)])
    predictions = [miss] * 101
    predictions[matching_index] = make_prediction(1, 1, 0.5, [ground_truth])
    stats = evaluate_ytvis(data, predictions).stats
    assert stats["AP"] == pytest.approx(expected_ap, abs=1e-12)
    assert stats["AR100"] == (1.0 if matching_index < 100 else 0.0)


# Properties.


@st.composite
def box_masks(draw, height, width, nonempty=False):
    top = draw(st.integers(0, height - nonempty))
    bottom = draw(st.integers(top + nonempty, height))
    left = draw(st.integers(0, width - nonempty))
    right = draw(st.integers(left + nonempty, width))
    return box(height, width, top, left, bottom, right)


@st.composite
def masks_over_video(draw, height, width, frames, nonempty=False):
    """One box or None per frame; with `nonempty`, at least one frame has a non-empty box."""
    masks = [draw(st.none() | box_masks(height, width)) for _ in range(frames)]
    if nonempty:
        masks[draw(st.integers(0, frames - 1))] = draw(box_masks(height, width, nonempty=True))
    return masks


@st.composite
def datasets(draw):
    """Small videos with ground-truth tracks (at least one) that each have a non-empty mask somewhere."""
    videos = draw(
        st.lists(st.tuples(st.integers(4, 10), st.integers(4, 10), st.integers(1, 3)), min_size=1, max_size=3)
    )
    tracks = []
    for video_id, (height, width, frames) in enumerate(videos, start=1):
        for _ in range(draw(st.integers(int(video_id == 1), 3))):
            masks = draw(masks_over_video(height, width, frames, nonempty=True))
            tracks.append((video_id, draw(st.integers(1, 2)), masks))
    return videos, tracks


@st.composite
def random_predictions(draw, videos, tracks, scores):
    predictions = []
    for score in scores:
        if draw(st.booleans()):
            video_id, category_id, masks = draw(st.sampled_from(tracks))
        else:
            video_id = draw(st.integers(1, len(videos)))
            height, width, frames = videos[video_id - 1]
            category_id, masks = draw(st.integers(1, 2)), draw(masks_over_video(height, width, frames))
        predictions.append(make_prediction(video_id, category_id, score, masks))
    return predictions


@given(data=st.data())
@PROPERTY_SETTINGS
def test_video_iou_matches_decoded_masks(data):
    height, width, frames = data.draw(st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 4)))
    first = data.draw(st.lists(masks_over_video(height, width, frames), min_size=1, max_size=3))
    second = data.draw(st.lists(masks_over_video(height, width, frames), min_size=1, max_size=3))
    video = {"videos": [{"id": 1, "height": height, "width": width, "length": frames}], "categories": [{"id": 1}]}
    tracks = load_predictions(
        [make_prediction(1, 1, 1.0, masks) for masks in first + second], load_ground_truth(video, False)
    )
    iou = video_iou(tracks[: len(first)], tracks[len(first) :])
    expected = [[brute_force_iou(masks_a, masks_b) for masks_b in second] for masks_a in first]
    assert iou.tolist() == expected


@given(dataset=datasets(), data=st.data())
@PROPERTY_SETTINGS
def test_perfect_predictions_give_ap_one(dataset, data):
    videos, tracks = dataset
    scores = data.draw(st.lists(st.floats(0.01, 1.0), min_size=len(tracks), max_size=len(tracks)))
    predictions = [
        make_prediction(video_id, category_id, score, masks)
        for (video_id, category_id, masks), score in zip(tracks, scores)
    ]
    stats = evaluate_ytvis(make_dataset(videos, tracks), predictions).stats
    assert stats["AP"] == pytest.approx(1.0, abs=1e-12)
    assert stats["AR100"] == pytest.approx(1.0, abs=1e-12)


@given(dataset=datasets(), data=st.data())
@PROPERTY_SETTINGS
def test_lowest_scored_false_positive_never_raises_a_stat(dataset, data):
    videos, tracks = dataset
    scores = data.draw(st.lists(st.floats(0.1, 1.0), min_size=1, max_size=6))
    predictions = data.draw(random_predictions(videos, tracks, scores))
    video_id = data.draw(st.integers(1, len(videos)))
    category_id = data.draw(st.integers(1, 2))
    height, width, frames = videos[video_id - 1]
    masks = data.draw(masks_over_video(height, width, frames))
    same_group = [
        gt_masks for gt_video, gt_category, gt_masks in tracks if (gt_video, gt_category) == (video_id, category_id)
    ]
    assume(all(brute_force_iou(masks, gt_masks) < 0.5 for gt_masks in same_group))
    ground_truth = make_dataset(videos, tracks)
    before = evaluate_ytvis(ground_truth, predictions).stats
    after = evaluate_ytvis(ground_truth, predictions + [make_prediction(video_id, category_id, 0.05, masks)]).stats
    for name in STAT_NAMES:
        assert after[name] <= before[name] + 1e-12, name


@given(dataset=datasets(), data=st.data())
@PROPERTY_SETTINGS
def test_permuting_records_with_distinct_scores_changes_nothing(dataset, data):
    videos, tracks = dataset
    scores = data.draw(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8, unique=True))
    predictions = data.draw(random_predictions(videos, tracks, scores))
    permuted = data.draw(st.permutations(predictions))
    ground_truth = make_dataset(videos, tracks)
    original, shuffled = evaluate_ytvis(ground_truth, predictions), evaluate_ytvis(ground_truth, permuted)
    assert shuffled.stats == original.stats
    assert shuffled.per_category_ap == original.per_category_ap


@given(detections=st.lists(st.tuples(st.sampled_from([0.3, 0.6]), st.integers(0, 16)), min_size=1, max_size=8))
@PROPERTY_SETTINGS
def test_tied_scores_follow_a_stable_sort(detections):
    """One ground truth; detections are column prefixes with IoU k/16. AP follows the stably sorted order."""
    data = make_dataset([(4, 16, 1)], [(1, 1, [box(4, 16, 0, 0, 4, 16)])], num_categories=1)
    predictions = [make_prediction(1, 1, score, [box(4, 16, 0, 0, 4, columns)]) for score, columns in detections]
    ranked_ious = [columns / 16 for _, columns in sorted(detections, key=lambda detection: -detection[0])]
    expected_ap, expected_ar1 = [], []
    for threshold in IOU_THRESHOLDS:
        first_match = next((rank for rank, iou in enumerate(ranked_ious, start=1) if iou >= threshold), None)
        expected_ap.append(1 / first_match if first_match else 0.0)
        expected_ar1.append(float(first_match == 1))
    stats = evaluate_ytvis(data, predictions).stats
    assert stats["AP"] == pytest.approx(np.mean(expected_ap), abs=1e-12)
    assert stats["AR1"] == pytest.approx(np.mean(expected_ar1), abs=1e-12)


# Validation.


def valid_inputs():
    mask = box(6, 8, 1, 1, 4, 4)
    data = make_dataset([(6, 8, 3)], [(1, 1, [mask, None, mask])])
    return data, [make_prediction(1, 1, 0.9, [mask, mask, None]), make_prediction(1, 2, 0.4, [None, None, mask])]


def _set(path, value):
    def mutate(data, predictions):
        target = {"gt": data, "pred": predictions}[path[0]]
        for key in path[1:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return mutate


@pytest.mark.parametrize(
    "mutate, message",
    [
        (_set(("pred", 1, "video_id"), 99), "predictions: record 1 (video_id 99): unknown video_id"),
        (
            _set(("pred", 0, "segmentations"), [None, None]),
            "record 0 (video_id 1): 'segmentations' has 2 entries, the video has 3 frames",
        ),
        (
            _set(("pred", 1, "segmentations", 2, "size"), [8, 6]),
            "record 1 (video_id 1), frame 2: RLE size [8, 6] does not match the video size [6, 8]",
        ),
        (_set(("pred", 0, "score"), KeyError), "predictions: record 0: missing 'score'"),
        (_set(("pred", 1, "score"), "high"), "record 1 (video_id 1): 'score' must be a finite number, got 'high'"),
        (_set(("pred", 1, "score"), float("nan")), "record 1 (video_id 1): 'score' must be a finite number, got nan"),
        (_set(("pred", 0, "category_id"), 9), "record 0 (video_id 1): unknown category_id 9"),
        (
            _set(("pred", 0, "segmentations", 0, "counts"), [0, 48]),
            "record 0 (video_id 1), frame 0: 'counts' must be a compressed RLE string",
        ),
        (_set(("pred", 1), "oops"), "predictions: record 1: expected an object, got str"),
        (_set(("gt", "annotations", 0, "video_id"), 5), "annotations: annotation 0 (id 1): unknown video_id 5"),
        (
            _set(("gt", "annotations", 0, "segmentations"), [None]),
            "annotation 0 (id 1): 'segmentations' has 1 entries, video 1 has 3 frames",
        ),
        (
            _set(("gt", "annotations", 0, "segmentations", 2, "size"), [6, 9]),
            "annotation 0 (id 1), frame 2: RLE size [6, 9] does not match",
        ),
        (
            _set(("gt", "annotations", 0, "segmentations", 0), {"size": [6, 8], "counts": [3, 4]}),
            "annotation 0 (id 1), frame 0: RLE counts must be non-negative integers summing",
        ),
        (_set(("gt", "annotations"), KeyError), "the valid/test ground truth is private"),
    ],
)
def test_validation_names_the_record_and_field(mutate, message):
    data, predictions = valid_inputs()
    mutate(data, predictions)
    with pytest.raises(EvaluationInputError) as error:
        evaluate_ytvis(data, predictions)
    assert message in str(error.value)


def test_predictions_must_be_a_list():
    data, predictions = valid_inputs()
    with pytest.raises(EvaluationInputError, match="expected a JSON list of result records"):
        evaluate_ytvis(data, {"results": predictions})


# Submission.


def test_submission_zip_holds_exactly_results_json(tmp_path):
    predictions = json.loads(pred_path("medium").read_text())
    predictions[0]["score"] = np.float32(0.5)
    predictions[0]["segmentations"][0]["counts"] = predictions[0]["segmentations"][0]["counts"].encode("ascii")
    valid_split = {
        key: value for key, value in json.loads(gt_path("medium").read_text()).items() if key != "annotations"
    }
    archive_path = write_submission(predictions, tmp_path / "submission.zip", annotations=valid_split)
    with zipfile.ZipFile(archive_path) as archive:
        assert archive.namelist() == ["results.json"]
        results = json.loads(archive.read("results.json"))
    assert results[0]["score"] == 0.5 and isinstance(results[0]["segmentations"][0]["counts"], str)
    assert [sorted(record) for record in results] == [["category_id", "score", "segmentations", "video_id"]] * 32
    assert (
        evaluate_ytvis(gt_path("medium"), results[1:]).stats
        == evaluate_ytvis(gt_path("medium"), predictions[1:]).stats
    )


def test_submission_rejects_bad_records(tmp_path):
    predictions = json.loads(pred_path("easy").read_text())
    predictions[3]["segmentations"][1] = {"counts": "abc"}
    with pytest.raises(EvaluationInputError, match=r"record 3 \(video_id 3\), frame 1: expected a compressed RLE"):
        write_submission(predictions, tmp_path / "submission.zip")
    with pytest.raises(EvaluationInputError, match=r"record 0 \(video_id 1\): 'segmentations' has 3 entries"):
        write_submission(pred_path("hard"), tmp_path / "submission.zip", annotations=gt_path("medium"))
    assert not (tmp_path / "submission.zip").exists()
