"""Model cards: valid Hub metadata and a model-index that round-trip through `ModelCard.load` / `ModelCardData`."""

import pytest
from huggingface_hub import ModelCard, ModelCardData

from modeling_video_mask2former.conversion import PRESETS, config_from_detectron2, convert_checkpoint
from modeling_video_mask2former.conversion.detectron2_config import load_detectron2_config
from modeling_video_mask2former.demo import DEMO_MODEL_DIR
from modeling_video_mask2former.model_card import (
    CITATION,
    MODEL_ID_PLACEHOLDER,
    PAPER_AP50_AP75,
    PIPELINE_TAG,
    conversion_model_card,
    folder_model_card,
    set_model_id,
)

from .test_conversion import TINY_MODELS


def saved_and_loaded(card: ModelCard, tmp_path) -> ModelCard:
    card.save(tmp_path / "README.md")
    return ModelCard.load(tmp_path / "README.md")


def check_common_metadata(data: ModelCardData):
    assert data.library_name == "transformers"
    assert data.pipeline_tag == PIPELINE_TAG == "image-segmentation"
    assert {"video-instance-segmentation", "mask2former", "custom_code"} <= set(data.tags)


def check_usage_and_citation(text: str, model_id: str):
    assert f'AutoModel.from_pretrained("{model_id}", trust_remote_code=True)' in text
    assert f'AutoVideoProcessor.from_pretrained("{model_id}", trust_remote_code=True)' in text
    assert f'pipeline(model="{model_id}", trust_remote_code=True)' in text
    assert f"video-mask2former predict --model {model_id} " in text
    assert "no pipeline tag for video segmentation" in text
    assert CITATION in text and "arXiv:2112.10764" in CITATION


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_card_metadata_and_model_index_round_trip(name, tmp_path):
    preset = PRESETS[name]
    config = config_from_detectron2(load_detectron2_config(preset.config_path))
    card = saved_and_loaded(conversion_model_card(config, preset.checkpoint_url, preset), tmp_path)

    data = card.data
    check_common_metadata(data)
    assert data.license == "cc-by-nc-4.0"
    year = name.split("_")[1]
    expected_dataset = "coco" if name.startswith("coco") else f"youtube-vis-{year}"
    assert data.datasets == [expected_dataset]

    metrics = {result.metric_type: result for result in data.eval_results}
    assert metrics["ap"].metric_value == preset.reported_ap
    if name.startswith("ytvis"):
        assert (metrics["ap50"].metric_value, metrics["ap75"].metric_value) == PAPER_AP50_AP75[name]
        assert metrics["ap"].dataset_name == f"YouTube-VIS {year}"
        assert metrics["ap"].dataset_split == "validation"
        assert metrics["ap"].task_type == "video-instance-segmentation"
        assert metrics["ap"].source_url == "https://arxiv.org/abs/2112.10764"
    else:
        assert set(metrics) == {"ap"} and metrics["ap"].dataset_split == "val2017"
    assert {result.dataset_type for result in data.eval_results} == {expected_dataset}

    # the metadata survives a second round trip through `ModelCardData` (model-index included)
    again = ModelCardData(**data.to_dict())
    assert again.to_dict() == data.to_dict()
    assert [vars(result) for result in again.eval_results] == [vars(result) for result in data.eval_results]

    text = str(card)
    assert preset.checkpoint_url in text and preset.config in text and preset.model_id in text
    check_usage_and_citation(text, MODEL_ID_PLACEHOLDER)


def test_paper_numbers_cover_every_video_preset():
    assert set(PAPER_AP50_AP75) == {name for name in PRESETS if name.startswith("ytvis")}


def test_set_model_id_names_the_repo_everywhere(tmp_path):
    preset = PRESETS["ytvis_2019_R50"]
    config = config_from_detectron2(load_detectron2_config(preset.config_path))
    card = set_model_id(conversion_model_card(config, preset.checkpoint_url, preset), "someone/vm2f-r50")
    loaded = saved_and_loaded(card, tmp_path)
    assert MODEL_ID_PLACEHOLDER not in str(loaded)
    check_usage_and_citation(str(loaded), "someone/vm2f-r50")
    assert loaded.data.eval_results[0].metric_value == 46.4


def test_conversion_writes_the_card(tmp_path):
    checkpoint, config = TINY_MODELS["tiny_r50"]
    convert_checkpoint(checkpoint, config, tmp_path / "out", verify=False)
    card = ModelCard.load(tmp_path / "out" / "README.md")
    check_common_metadata(card.data)
    assert card.data.license == "other" and card.data.eval_results is None
    assert "`tiny_r50.pkl`" in str(card) and str(tmp_path) not in str(card)  # a local file is named, not its path
    check_usage_and_citation(str(card), MODEL_ID_PLACEHOLDER)


def test_folder_card_without_results(tmp_path):
    config = config_from_detectron2(load_detectron2_config(PRESETS["ytvis_2021_swin_tiny"].config_path))
    card = saved_and_loaded(folder_model_card(config, license="apache-2.0"), tmp_path)
    check_common_metadata(card.data)
    assert card.data.license == "apache-2.0" and card.data.eval_results is None
    assert "giant_panda" in str(card)  # the label names
    check_usage_and_citation(str(card), MODEL_ID_PLACEHOLDER)


def test_demo_model_card_states_training_and_held_out_ap():
    card = ModelCard.load(DEMO_MODEL_DIR / "README.md")
    check_common_metadata(card.data)
    assert card.data.license == "apache-2.0"
    metrics = {result.metric_type: result for result in card.data.eval_results}
    assert metrics["ap"].dataset_type == "synthetic-youtube-vis-shapes" and metrics["ap"].metric_value > 0
    assert f"| {metrics['ap'].metric_value:.1f} |" in str(card)  # the table shows the model-index number
    assert "benchmarks/train_demo_model.py" in str(card) and "video-mask2former train" in str(card)
