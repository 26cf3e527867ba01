"""A synthetic dataset in the official YouTube-VIS layout: moving, occluding, entering and leaving coloured shapes.

Each class has its own shape and colour, so a tiny model can learn it. Annotations describe the visible region of each
object (after occlusion by the objects in front of it and cropping by the frame border) and are `null` in frames where
nothing of the object is visible. Everything is deterministic from the seed; video `i` does not depend on how many
videos are generated.
"""

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils
from tqdm.auto import tqdm


# (name, RGB colour) per class; category id i + 1.
SYNTHETIC_CLASSES = (
    ("red_ellipse", (220, 40, 40)),
    ("green_rectangle", (40, 190, 60)),
    ("blue_triangle", (40, 80, 230)),
    ("yellow_diamond", (235, 205, 30)),
    ("magenta_cross", (200, 40, 200)),
    ("cyan_ring", (30, 200, 210)),
)
DEFAULT_FRAME_SIZES = ((96, 128), (120, 160), (144, 192), (180, 240))
INFO = {
    "description": "Synthetic YouTube-VIS style dataset of coloured shapes (video-mask2former)",
    "url": "",
    "version": "1.0",
    "year": 2019,
    "contributor": "video-mask2former",
    "date_created": "2019-04-11 00:00:00.000000",
}
LICENSES = [{"url": "https://creativecommons.org/licenses/by/4.0/", "id": 1, "name": "CC BY 4.0"}]


def synthetic_categories(num_classes: int) -> list[dict]:
    """The first `num_classes` (at most 6) synthetic categories, in the official `{"supercategory", "id", "name"}` form."""
    return [
        {"supercategory": "object", "id": index + 1, "name": name}
        for index, (name, _) in enumerate(SYNTHETIC_CLASSES[:num_classes])
    ]


def _ellipse(aspect: float, points: int = 32) -> np.ndarray:
    angles = np.linspace(0, 2 * math.pi, points, endpoint=False)
    return np.stack([np.cos(angles), aspect * np.sin(angles)], axis=1)


def _outline(name: str) -> list[tuple[np.ndarray, int]]:
    """Unit-radius polygons of a class and the value each is filled with (a ring is an ellipse with a hole)."""
    shape = name.split("_")[1]
    if shape == "ellipse":
        return [(_ellipse(0.6), 1)]
    if shape == "rectangle":
        return [(np.array([[-1.0, -0.6], [1.0, -0.6], [1.0, 0.6], [-1.0, 0.6]]), 1)]
    if shape == "triangle":
        angles = np.deg2rad([90.0, 210.0, 330.0])
        return [(np.stack([np.cos(angles), np.sin(angles)], axis=1), 1)]
    if shape == "diamond":
        return [(np.array([[1.0, 0.0], [0.0, 0.7], [-1.0, 0.0], [0.0, -0.7]]), 1)]
    if shape == "cross":
        arm = 0.3
        corners = [(arm, arm), (1, arm), (1, -arm), (arm, -arm), (arm, -1), (-arm, -1)]
        corners += [(-arm, -arm), (-1, -arm), (-1, arm), (-arm, arm), (-arm, 1), (arm, 1)]
        return [(np.array(corners, dtype=float), 1)]
    return [(_ellipse(1.0), 1), (_ellipse(1.0) * 0.5, 0)]


@dataclass
class SyntheticVideo:
    """One synthetic video in memory.

    Attributes:
        frames: `(T, H, W, 3)` uint8 RGB frames.
        visible_masks: `(N, T, H, W)` bool visible region of each track (what the annotations describe).
        amodal_masks: `(N, T, H, W)` bool full shape of each track inside the frame, ignoring occlusion.
        category_ids: `(N,)` 1-based category ids.
    """

    frames: np.ndarray
    visible_masks: np.ndarray
    amodal_masks: np.ndarray
    category_ids: list[int]


def _sample_track(rng: np.random.Generator, height: int, width: int, num_frames: int, num_classes: int) -> dict:
    side = min(height, width)
    class_index = int(rng.integers(num_classes))
    radius = rng.uniform(0.12, 0.28) * side
    direction = rng.uniform(0, 2 * math.pi)
    velocity = np.array([math.cos(direction), math.sin(direction)]) * rng.uniform(0.0, 0.08) * side
    center = np.array([rng.uniform(0, width), rng.uniform(0, height)])
    if rng.random() < 0.3:  # enters through the left or right border
        sign = 1.0 if rng.random() < 0.5 else -1.0
        center[0] = -radius if sign > 0 else width + radius
        velocity[0] = sign * max(abs(velocity[0]), 0.05 * side)
    start = int(rng.integers(0, max(1, num_frames // 2))) if rng.random() < 0.25 else 0
    end = int(rng.integers(start + 1, num_frames + 1)) if rng.random() < 0.25 else num_frames
    colour = np.array(SYNTHETIC_CLASSES[class_index][1]) + rng.integers(-20, 21, size=3)
    return {
        "class_index": class_index,
        "radius": radius,
        "growth": rng.uniform(0.97, 1.03),
        "center": center,
        "velocity": velocity,
        "angle": rng.uniform(0, 2 * math.pi),
        "spin": rng.uniform(-0.15, 0.15),
        "lifetime": range(start, end),
        "colour": np.clip(colour, 0, 255),
    }


def _draw(track: dict, frame: int, height: int, width: int) -> np.ndarray:
    """The `(H, W)` bool amodal mask of `track` in `frame` (empty outside its lifetime)."""
    canvas = Image.new("L", (width, height), 0)
    if frame in track["lifetime"]:
        scale = track["radius"] * track["growth"] ** frame
        angle = track["angle"] + track["spin"] * frame
        rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        center = track["center"] + track["velocity"] * frame
        draw = ImageDraw.Draw(canvas)
        for polygon, fill in _outline(SYNTHETIC_CLASSES[track["class_index"]][0]):
            points = polygon * scale @ rotation.T + center
            draw.polygon([tuple(point) for point in points.tolist()], fill=fill)
    return np.asarray(canvas, dtype=bool)


def render_synthetic_video(
    rng: np.random.Generator, height: int, width: int, num_frames: int, num_classes: int = 4, max_tracks: int = 4
) -> SyntheticVideo:
    """Renders one video of 1 to `max_tracks` shapes; tracks never visible are left out (at least one is visible)."""
    if not 1 <= num_classes <= len(SYNTHETIC_CLASSES):
        raise ValueError(f"num_classes must be in [1, {len(SYNTHETIC_CLASSES)}], got {num_classes}.")
    while True:
        num_tracks = int(rng.integers(1, max_tracks + 1))
        tracks = [_sample_track(rng, height, width, num_frames, num_classes) for _ in range(num_tracks)]
        # tracks are listed back to front: later ones occlude earlier ones
        amodal = np.stack([[_draw(track, t, height, width) for t in range(num_frames)] for track in tracks])
        owner = np.full((num_frames, height, width), -1)
        for index in range(len(tracks)):
            owner[amodal[index]] = index
        visible = owner[None] == np.arange(len(tracks))[:, None, None, None]
        keep = visible.any(axis=(1, 2, 3))
        if keep.any():
            break

    background = rng.uniform(70, 180) + rng.uniform(-15, 15, size=3)
    tint = rng.uniform(-40, 40) + rng.uniform(-10, 10, size=3)
    direction = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width]
    ramp = (xs * math.cos(direction) / width + ys * math.sin(direction) / height)[..., None]
    frames = np.broadcast_to(background + tint * ramp, (num_frames, height, width, 3)).copy()
    for index, track in enumerate(tracks):
        frames[visible[index]] = track["colour"]
    frames += rng.normal(0.0, 6.0, size=frames.shape)
    return SyntheticVideo(
        frames=np.clip(frames, 0, 255).round().astype(np.uint8),
        visible_masks=visible[keep],
        amodal_masks=amodal[keep],
        category_ids=[track["class_index"] + 1 for track, kept in zip(tracks, keep) if kept],
    )


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """The official train files' RLE of an `(H, W)` mask: column-major run lengths, starting with a run of zeros."""
    flat = mask.ravel(order="F").astype(np.int8)
    boundaries = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    counts = np.diff(boundaries).tolist()
    if flat[0]:
        counts = [0] + counts
    return {"counts": counts, "size": list(mask.shape)}


def _frame_annotation(mask: np.ndarray, rle_format: str) -> tuple[dict | None, list[float] | None, float | None]:
    """The segmentation, `[x, y, w, h]` box and area of one `(H, W)` visible mask; `None`s where it is empty."""
    if not mask.any():
        return None, None, None
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    if rle_format == "uncompressed":
        segmentation = _uncompressed_rle(mask)
    else:
        segmentation = {"counts": rle["counts"].decode("ascii"), "size": list(mask.shape)}
    return segmentation, mask_utils.toBbox(rle).tolist(), float(mask_utils.area(rle))


def generate_synthetic_ytvis(
    output_dir: str | os.PathLike,
    num_videos: int,
    seed: int = 0,
    num_classes: int = 4,
    frame_sizes: tuple[tuple[int, int], ...] = DEFAULT_FRAME_SIZES,
    num_frames: tuple[int, int] = (5, 10),
    max_tracks: int = 4,
    rle_format: str = "uncompressed",
    split: str = "train",
) -> Path:
    """Writes `<output_dir>/<split>.json` and `<output_dir>/JPEGImages/<video>/00000.jpg, 00005.jpg, ...` (frames
    named as YouTube-VIS 2019 names every 5th source frame) in the official layout.

    Args:
        num_frames: inclusive range of the number of frames per video.
        frame_sizes: `(height, width)` choices per video.
        rle_format: `"uncompressed"` (int-list counts, as the official train files) or `"compressed"`.

    Returns:
        The path of the annotation JSON.
    """
    if rle_format not in ("uncompressed", "compressed"):
        raise ValueError(f"rle_format must be 'uncompressed' or 'compressed', got {rle_format!r}.")
    output_dir = Path(output_dir)
    categories = synthetic_categories(num_classes)
    videos, annotations = [], []
    for index in tqdm(range(num_videos), desc="Rendering synthetic videos"):
        rng = np.random.default_rng([seed, index])
        height, width = frame_sizes[rng.integers(len(frame_sizes))]
        length = int(rng.integers(num_frames[0], num_frames[1] + 1))
        video = render_synthetic_video(rng, height, width, length, num_classes, max_tracks)
        video_name = f"synth{index:05d}"
        file_names = [f"{video_name}/{5 * t:05d}.jpg" for t in range(length)]
        (output_dir / "JPEGImages" / video_name).mkdir(parents=True, exist_ok=True)
        for file_name, frame in zip(file_names, video.frames):
            Image.fromarray(frame).save(output_dir / "JPEGImages" / file_name, quality=90)
        video_id = index + 1
        videos.append(
            {
                "license": 1,
                "coco_url": "",
                "height": height,
                "width": width,
                "length": length,
                "date_captured": INFO["date_created"],
                "file_names": file_names,
                "flickr_url": "",
                "id": video_id,
            }
        )
        for masks, category_id in zip(video.visible_masks, video.category_ids):
            segmentations, bboxes, areas = zip(*(_frame_annotation(mask, rle_format) for mask in masks))
            annotations.append(
                {
                    "height": height,
                    "width": width,
                    "length": 1,
                    "category_id": category_id,
                    "segmentations": list(segmentations),
                    "bboxes": list(bboxes),
                    "video_id": video_id,
                    "iscrowd": 0,
                    "id": len(annotations) + 1,
                    "areas": list(areas),
                }
            )
    data = {
        "info": INFO,
        "licenses": LICENSES,
        "videos": videos,
        "categories": categories,
        "annotations": annotations,
    }
    annotation_file = output_dir / f"{split}.json"
    with open(annotation_file, "w") as handle:
        json.dump(data, handle)
    return annotation_file
