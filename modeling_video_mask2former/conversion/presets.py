"""The original model zoo: 12 YouTube-VIS video models and the 6 COCO instance models that initialise them."""

from dataclasses import dataclass
from pathlib import Path


PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"
_VIDEO_URL = "https://dl.fbaipublicfiles.com/maskformer/video_mask2former/ytvis_{year}/{config}/{file}"
_COCO_URL = "https://dl.fbaipublicfiles.com/maskformer/mask2former/coco/instance/{config}/{file}"


@dataclass(frozen=True)
class Preset:
    """A model-zoo entry: its yaml (shipped under `presets/`), checkpoint URL and reported mask AP."""

    name: str
    config: str  # relative to PRESETS_DIR, as under the original repository's `configs/`
    checkpoint_url: str
    reported_ap: float
    dataset: str  # where `reported_ap` was measured
    backbone: str
    model_id: str

    @property
    def config_path(self) -> Path:
        return PRESETS_DIR / self.config


# (name suffix, backbone, yaml path below the dataset folder)
_BACKBONES = [
    ("R50", "R50", "video_maskformer2_R50_bs16_8ep"),
    ("R101", "R101", "video_maskformer2_R101_bs16_8ep"),
    ("swin_tiny", "Swin-T", "swin/video_maskformer2_swin_tiny_bs16_8ep"),
    ("swin_small", "Swin-S", "swin/video_maskformer2_swin_small_bs16_8ep"),
    ("swin_base", "Swin-B (IN21k)", "swin/video_maskformer2_swin_base_IN21k_384_bs16_8ep"),
    ("swin_large", "Swin-L (IN21k, 200 queries)", "swin/video_maskformer2_swin_large_IN21k_384_bs16_8ep"),
]
# MODEL_ZOO.md: (year, suffix) -> (checkpoint file, AP, model id)
_VIDEO_ZOO = {
    (2019, "R50"): ("model_final_34112b.pkl", 46.4, "51130652_3"),
    (2019, "R101"): ("model_final_a34dca.pkl", 49.2, "50897581_1"),
    (2019, "swin_tiny"): ("model_final_26fffe.pkl", 51.5, "50897611_3"),
    (2019, "swin_small"): ("model_final_4a5174.pkl", 54.3, "50897661_2"),
    (2019, "swin_base"): ("model_final_221a8a.pkl", 59.5, "50897733_2"),
    (2019, "swin_large"): ("model_final_c5c739.pkl", 60.4, "50908813_0"),
    (2021, "R50"): ("model_final_b8aae2.pkl", 40.6, "51130652_7"),
    (2021, "R101"): ("model_final_6efd7a.pkl", 42.4, "50897581_8"),
    (2021, "swin_tiny"): ("model_final_965185.pkl", 45.9, "50897611_7"),
    (2021, "swin_small"): ("model_final_0dec91.pkl", 48.6, "50897661_7"),
    (2021, "swin_base"): ("model_final_a9b925.pkl", 52.0, "50897733_9"),
    (2021, "swin_large"): ("model_final_4da256.pkl", 52.6, "50908813_6"),
}
# MODEL_ZOO.md, COCO instance segmentation: suffix -> (yaml path, checkpoint file, AP, model id)
_COCO_ZOO = {
    "R50": ("maskformer2_R50_bs16_50ep", "model_final_3c8ec9.pkl", 43.7, "47430277_2"),
    "R101": ("maskformer2_R101_bs16_50ep", "model_final_eba159.pkl", 44.2, "47992113_0"),
    "swin_tiny": ("swin/maskformer2_swin_tiny_bs16_50ep", "model_final_86143f.pkl", 45.0, "48558700_0"),
    "swin_small": ("swin/maskformer2_swin_small_bs16_50ep", "model_final_1e7f22.pkl", 46.3, "48558700_2"),
    "swin_base": ("swin/maskformer2_swin_base_IN21k_384_bs16_50ep", "model_final_83d103.pkl", 48.1, "48558700_6"),
    "swin_large": ("swin/maskformer2_swin_large_IN21k_384_bs16_100ep", "model_final_e5f453.pkl", 50.1, "48235555"),
}


def _build_presets() -> dict[str, Preset]:
    presets = {}
    for year in (2019, 2021):
        for suffix, backbone, config in _BACKBONES:
            file, ap, model_id = _VIDEO_ZOO[(year, suffix)]
            name = f"ytvis_{year}_{suffix}"
            url = _VIDEO_URL.format(year=year, config=Path(config).name, file=file)
            presets[name] = Preset(
                name, f"youtubevis_{year}/{config}.yaml", url, ap, f"YouTube-VIS {year} val", backbone, model_id
            )
    for suffix, backbone, _ in _BACKBONES:
        config, file, ap, model_id = _COCO_ZOO[suffix]
        url = _COCO_URL.format(config=Path(config).name, file=file)
        presets[f"coco_{suffix}"] = Preset(
            f"coco_{suffix}", f"coco/instance-segmentation/{config}.yaml", url, ap, "COCO val2017", backbone, model_id
        )
    return presets


PRESETS: dict[str, Preset] = _build_presets()


def get_preset(name: str) -> Preset:
    """The preset called `name` (see `PRESETS`)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
