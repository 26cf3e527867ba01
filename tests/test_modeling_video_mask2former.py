"""Model tests on tiny random configurations (parity with the original lives in `test_parity_*.py`)."""

import pytest
import torch
from transformers import (
    AutoModel,
    Mask2FormerConfig,
    Mask2FormerForUniversalSegmentation,
    ResNetConfig,
    SwinConfig,
)

from modeling_video_mask2former import (
    VideoMask2FormerConfig,
    VideoMask2FormerForVideoInstanceSegmentation,
    VideoMask2FormerModel,
)


class VideoMask2FormerModelTester:
    def __init__(self, backbone="resnet", batch_size=2, num_frames=3, height=64, width=96, num_labels=5):
        self.backbone = backbone
        self.batch_size = batch_size
        self.num_frames = num_frames
        self.height = height
        self.width = width
        self.num_labels = num_labels
        self.num_queries = 6
        self.hidden_dim = 32

    def get_backbone_config(self):
        stages = ["stage1", "stage2", "stage3", "stage4"]
        if self.backbone == "swin":
            return SwinConfig(
                embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4, out_features=stages
            )
        return ResNetConfig(
            embedding_size=8,
            hidden_sizes=[16, 16, 32, 32],
            depths=[1, 1, 1, 1],
            layer_type="bottleneck",
            downsample_in_first_stage=False,
            downsample_in_bottleneck=False,
            out_features=stages,
        )

    def get_config(self, **kwargs):
        return VideoMask2FormerConfig(
            backbone_config=self.get_backbone_config(),
            feature_size=self.hidden_dim,
            mask_feature_size=self.hidden_dim,
            hidden_dim=self.hidden_dim,
            num_attention_heads=2,
            dim_feedforward=32,
            encoder_layers=2,
            encoder_feedforward_dim=32,
            decoder_layers=4,
            num_queries=self.num_queries,
            num_labels=self.num_labels,
            train_num_points=64,
            **kwargs,
        )

    def prepare_pixel_values(self, seed=0):
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(
            self.batch_size, self.num_frames, 3, self.height, self.width, generator=generator
        )

    def prepare_labels(self, seed=0):
        generator = torch.Generator().manual_seed(seed)
        mask_labels, class_labels = [], []
        for _ in range(self.batch_size):
            masks = torch.zeros(2, self.num_frames, self.height, self.width)
            masks[0, :, 8:40, 8:48] = 1
            masks[1, :, 30:60, 50:90] = 1
            mask_labels.append(masks)
            class_labels.append(torch.randint(0, self.num_labels, (2,), generator=generator))
        return mask_labels, class_labels


def build_model(tester, **config_kwargs):
    torch.manual_seed(0)
    return VideoMask2FormerForVideoInstanceSegmentation(tester.get_config(**config_kwargs)).eval()


@pytest.mark.parametrize("backbone", ["resnet", "swin"])
def test_output_shapes(backbone):
    tester = VideoMask2FormerModelTester(backbone=backbone)
    model = build_model(tester)
    with torch.no_grad():
        outputs = model(tester.prepare_pixel_values())
    b, q, t = tester.batch_size, tester.num_queries, tester.num_frames
    assert outputs.class_queries_logits.shape == (b, q, tester.num_labels + 1)
    assert outputs.masks_queries_logits.shape == (b, q, t, tester.height // 4, tester.width // 4)
    assert outputs.auxiliary_logits is None  # kept only on request at inference

    with torch.no_grad():
        outputs = model(tester.prepare_pixel_values(), output_auxiliary_logits=True, output_hidden_states=True)
    # one prediction from the learnable queries, then one after every decoder layer but the last
    assert len(outputs.auxiliary_logits) == model.config.decoder_layers - 1
    for auxiliary in outputs.auxiliary_logits:
        assert auxiliary["class_queries_logits"].shape == (b, q, tester.num_labels + 1)
        assert auxiliary["masks_queries_logits"].shape == (b, q, t, tester.height // 4, tester.width // 4)
    assert len(outputs.encoder_hidden_states) == 4
    assert outputs.encoder_hidden_states[0].shape[0] == b * t
    assert len(outputs.transformer_decoder_hidden_states) == model.config.decoder_layers


def test_clips_in_a_batch_are_independent():
    tester = VideoMask2FormerModelTester(batch_size=2)
    model = build_model(tester)
    pixel_values = tester.prepare_pixel_values()
    with torch.no_grad():
        batched = model(pixel_values)
        for index in range(2):
            single = model(pixel_values[index : index + 1])
            torch.testing.assert_close(
                batched.class_queries_logits[index], single.class_queries_logits[0], atol=1e-5, rtol=0
            )
            torch.testing.assert_close(
                batched.masks_queries_logits[index], single.masks_queries_logits[0], atol=1e-4, rtol=0
            )


def test_frames_interact_through_the_spatio_temporal_memory():
    """Changing one frame changes the predicted masks of the other frames: the queries attend to the whole tube."""
    tester = VideoMask2FormerModelTester(batch_size=1)
    model = build_model(tester)
    pixel_values = tester.prepare_pixel_values()
    changed = pixel_values.clone()
    changed[:, -1] = torch.randn_like(changed[:, -1])
    with torch.no_grad():
        first = model(pixel_values).masks_queries_logits[:, :, 0]
        second = model(changed).masks_queries_logits[:, :, 0]
    assert (first - second).abs().max() > 1e-2 * first.abs().max()


def test_fully_masked_attention_rows_attend_everywhere(monkeypatch):
    """As in the original, a query whose mask blocks every position attends to the whole memory instead."""
    tester = VideoMask2FormerModelTester(batch_size=1)
    model = build_model(tester)
    pixel_values = tester.prepare_pixel_values()
    predictor = model.model.transformer_module.decoder.mask_predictor
    original_forward = predictor.forward

    def run_with_attention_mask(value):
        def forward(*args, **kwargs):
            mask_logits, attention_mask = original_forward(*args, **kwargs)
            return mask_logits, torch.full_like(attention_mask, value)

        monkeypatch.setattr(predictor, "forward", forward)
        with torch.no_grad():
            return model(pixel_values).class_queries_logits

    fully_masked = run_with_attention_mask(True)
    unmasked = run_with_attention_mask(False)
    torch.testing.assert_close(fully_masked, unmasked, atol=0, rtol=0)


def test_invalid_inputs_are_rejected():
    tester = VideoMask2FormerModelTester(batch_size=1)
    model = build_model(tester)
    with pytest.raises(ValueError, match=r"\(batch, frames, 3, height, width\)"):
        model(torch.randn(3, 3, 64, 96))
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(1, 2, 3, 64, 96, dtype=torch.uint8))


def test_backbone_batch_norms_stay_frozen_in_training():
    tester = VideoMask2FormerModelTester(batch_size=1)
    model = build_model(tester).train()
    batch_norms = [m for m in model.model.pixel_level_module.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert batch_norms
    running_means = [m.running_mean.clone() for m in batch_norms]
    model(tester.prepare_pixel_values())
    for module, before in zip(batch_norms, running_means):
        assert not module.training
        assert not any(p.requires_grad for p in module.parameters())
        torch.testing.assert_close(module.running_mean, before, atol=0, rtol=0)


def test_training_loss_backpropagates_and_decreases():
    tester = VideoMask2FormerModelTester(batch_size=2, num_frames=2)
    model = build_model(tester).train()
    pixel_values = tester.prepare_pixel_values()
    mask_labels, class_labels = tester.prepare_labels()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(15):
        torch.manual_seed(0)  # the same sampled points every step, so the losses are comparable
        outputs = model(pixel_values, mask_labels=mask_labels, class_labels=class_labels)
        optimizer.zero_grad()
        outputs.loss.backward()
        optimizer.step()
        losses.append(outputs.loss.item())
    assert model.class_predictor.weight.grad.abs().sum() > 0
    assert model.model.transformer_module.queries_features.weight.grad.abs().sum() > 0
    assert losses[-1] < 0.8 * losses[0], losses


def test_save_and_auto_load_round_trip(tmp_path):
    tester = VideoMask2FormerModelTester(batch_size=1)
    model = build_model(tester)
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, VideoMask2FormerForVideoInstanceSegmentation)
    pixel_values = tester.prepare_pixel_values()
    with torch.no_grad():
        expected, actual = model(pixel_values), loaded(pixel_values)
    torch.testing.assert_close(actual.class_queries_logits, expected.class_queries_logits, atol=0, rtol=0)
    torch.testing.assert_close(actual.masks_queries_logits, expected.masks_queries_logits, atol=0, rtol=0)


def test_image_mask2former_checkpoint_initialises_the_video_model(tmp_path):
    """The paper initialises video training from the COCO image model: every weight but the classifier loads."""
    tester = VideoMask2FormerModelTester(backbone="swin", batch_size=1, num_frames=1)
    video_config = tester.get_config()
    image_config = Mask2FormerConfig(**{k: v for k, v in video_config.to_dict().items() if k in Mask2FormerConfig.__dataclass_fields__})
    image_config.num_labels = 80
    torch.manual_seed(1)
    image_model = Mask2FormerForUniversalSegmentation(image_config).eval()
    image_model.save_pretrained(tmp_path)

    video_model, info = VideoMask2FormerForVideoInstanceSegmentation.from_pretrained(
        tmp_path, config=video_config, ignore_mismatched_sizes=True, output_loading_info=True
    )
    video_model.eval()
    assert info["missing_keys"] == set() or not info["missing_keys"]
    assert not info["unexpected_keys"]
    mismatched = {key for key, *_ in info["mismatched_keys"]}
    assert mismatched == {"class_predictor.weight", "class_predictor.bias", "criterion.empty_weight"}

    frame = tester.prepare_pixel_values()
    with torch.no_grad():
        image_out = image_model.model(frame[:, 0], output_hidden_states=True)
        video_out = video_model.model(frame, output_hidden_states=True)
    for image_features, video_features in zip(image_out.encoder_hidden_states, video_out.encoder_hidden_states):
        torch.testing.assert_close(video_features, image_features, atol=0, rtol=0)
    # the pixel decoder's deformable attention is our faster equivalent of transformers' (rounding differs)
    for image_features, video_features in zip(
        image_out.pixel_decoder_hidden_states, video_out.pixel_decoder_hidden_states
    ):
        torch.testing.assert_close(video_features, image_features, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        video_out.pixel_decoder_last_hidden_state, image_out.pixel_decoder_last_hidden_state, atol=1e-5, rtol=0
    )


def test_base_model_is_loadable_from_the_head_checkpoint(tmp_path):
    tester = VideoMask2FormerModelTester(batch_size=1)
    model = build_model(tester)
    model.save_pretrained(tmp_path)
    base = VideoMask2FormerModel.from_pretrained(tmp_path).eval()
    pixel_values = tester.prepare_pixel_values()
    with torch.no_grad():
        expected = model.model(pixel_values).masks_queries_logits[-1]
        actual = base(pixel_values).masks_queries_logits[-1]
    torch.testing.assert_close(actual, expected, atol=0, rtol=0)
