"""Conversion of original (detectron2) Video Mask2Former checkpoints and configs to this package's model."""

from .checkpoint import UnsafeCheckpointError, load_original_state_dict
from .convert import ConversionError, ConversionReport, convert_checkpoint, convert_model, map_state_dict
from .detectron2_config import UnsupportedConfigError, config_from_detectron2, load_detectron2_config
from .presets import PRESETS, Preset, get_preset
from .rename import rename_state_dict


__all__ = [
    "PRESETS",
    "ConversionError",
    "ConversionReport",
    "Preset",
    "UnsafeCheckpointError",
    "UnsupportedConfigError",
    "config_from_detectron2",
    "convert_checkpoint",
    "convert_model",
    "get_preset",
    "load_detectron2_config",
    "load_original_state_dict",
    "map_state_dict",
    "rename_state_dict",
]
