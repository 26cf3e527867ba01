"""YouTube-VIS / OVIS data: category lists, a `datasets` loader with Parquet shards, training clips, synthetic data."""

from .categories import CategoryMapping, load_categories
from .clips import make_training_clip, sample_clip_frames
from .synthetic import SyntheticVideo, generate_synthetic_ytvis, render_synthetic_video, synthetic_categories
from .youtubevis import (
    YTVISFormatError,
    decode_segmentation,
    load_youtubevis,
    write_parquet_shards,
    youtubevis_features,
)


__all__ = [
    "CategoryMapping",
    "SyntheticVideo",
    "YTVISFormatError",
    "decode_segmentation",
    "generate_synthetic_ytvis",
    "load_categories",
    "load_youtubevis",
    "make_training_clip",
    "render_synthetic_video",
    "sample_clip_frames",
    "synthetic_categories",
    "write_parquet_shards",
    "youtubevis_features",
]
