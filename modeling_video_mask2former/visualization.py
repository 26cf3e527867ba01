"""Overlay videos of tracks: each track one colour over all frames, labelled "name score" next to its mask."""

import colorsys
import os
from collections.abc import Iterable, Iterator, Mapping
from fractions import Fraction

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pycocotools import mask as mask_utils


def track_colors(num_tracks: int) -> list[tuple[int, int, int]]:
    """`num_tracks` distinct, saturated RGB colours (hues spaced by the golden ratio), the same on every call."""
    hues = (index * 0.618033988749895 % 1.0 for index in range(num_tracks))
    return [tuple(int(255 * channel) for channel in colorsys.hsv_to_rgb(hue, 0.85, 0.95)) for hue in hues]


def draw_tracks(
    frame: np.ndarray,
    masks: list[np.ndarray],
    colors: list[tuple[int, int, int]],
    texts: list[str],
    alpha: float = 0.5,
) -> np.ndarray:
    """
    Blends each `(H, W)` boolean mask into the `(H, W, 3)` uint8 `frame` in its colour, in order (later masks on top),
    and writes each text on a box of that colour (in black or white, whichever reads better) at the top-left corner of
    its mask. Returns a new `(H, W, 3)` uint8 frame; empty masks are skipped.
    """
    canvas = frame.astype(np.float32)
    boxes = []
    for mask, color, text in zip(masks, colors, texts):
        if not mask.any():
            continue
        canvas[mask] = (1 - alpha) * canvas[mask] + alpha * np.asarray(color, dtype=np.float32)
        rows, columns = np.nonzero(mask)
        boxes.append((int(columns.min()), int(rows.min()), color, text))
    image = Image.fromarray(canvas.round().astype(np.uint8))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for left, top, color, text in boxes:
        text_left, text_top, text_right, text_bottom = draw.textbbox((0, 0), text, font=font)
        width, height = text_right - text_left + 4, text_bottom - text_top + 4
        left = max(0, min(left, image.width - width))
        top = top - height if top >= height else top  # above the mask when there is room
        draw.rectangle((left, top, left + width - 1, top + height - 1), fill=color)
        text_color = (0, 0, 0) if 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2] > 150 else (255, 255, 255)
        draw.text((left + 2 - text_left, top + 2 - text_top), text, fill=text_color, font=font)
    return np.asarray(image)


def _overlay_frames(
    frames: Iterable[np.ndarray], tracks: list[dict], id2label: Mapping[int, str], alpha: float
) -> Iterator[np.ndarray]:
    """Yields the overlaid frames; frame `t` shows each track's mask `segmentations[t]`, lowest score drawn first."""
    order = sorted(range(len(tracks)), key=lambda index: tracks[index]["score"])
    colors = track_colors(len(tracks))
    texts = [f"{id2label.get(track['label'], str(track['label']))} {track['score']:.2f}" for track in tracks]
    for index, frame in enumerate(frames):
        masks = [mask_utils.decode(tracks[track]["segmentations"][index]).astype(bool) for track in order]
        yield draw_tracks(frame, masks, [colors[track] for track in order], [texts[track] for track in order], alpha)


def write_overlay_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    tracks: list[dict],
    id2label: Mapping[int, str],
    fps: float,
    alpha: float = 0.5,
) -> int:
    """
    Writes the video's `(H, W, 3)` uint8 frames with the tracks overlaid (see `draw_tracks`), frame by frame: MP4
    (H.264, yuv420p, via PyAV) when `path` ends in `.mp4`, an animated GIF (via PIL, which holds every frame) when it
    ends in `.gif`. An MP4 of odd height or width gets one black row or column added, as H.264 in yuv420p needs.

    Args:
        tracks (`list[dict]`): tracks with `score`, `label` and `segmentations` (one RLE per frame, in the order of
            `frames`), e.g. from `segment_clip` or `segment_video_windowed`. Colours follow the order of `tracks`.
        id2label (`Mapping[int, str]`): label names, e.g. `model.config.id2label`.
        fps (`float`): frame rate of the written video.

    Returns:
        `int`: the number of frames written.
    """
    path = os.fspath(path)
    overlaid = _overlay_frames(frames, tracks, id2label, alpha)
    if path.lower().endswith(".gif"):
        images = [Image.fromarray(frame) for frame in overlaid]
        if not images:
            raise ValueError("Got a video with no frames.")
        images[0].save(
            path, save_all=True, append_images=images[1:], duration=max(1, round(1000 / fps)), loop=0, optimize=False
        )
        return len(images)
    if not path.lower().endswith(".mp4"):
        raise ValueError(f"Overlay videos are written as .mp4 or .gif; got {path!r}.")
    num_frames = 0
    with av.open(path, mode="w") as container:
        stream = None
        for frame in overlaid:
            if stream is None:
                height, width = frame.shape[0] + frame.shape[0] % 2, frame.shape[1] + frame.shape[1] % 2
                stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                stream.height, stream.width, stream.pix_fmt = height, width, "yuv420p"
            if frame.shape[:2] != (height, width):
                frame = np.pad(frame, ((0, height - frame.shape[0]), (0, width - frame.shape[1]), (0, 0)))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
            num_frames += 1
        if stream is None:
            raise ValueError("Got a video with no frames.")
        container.mux(stream.encode())
    return num_frames


__all__ = ["draw_tracks", "track_colors", "write_overlay_video"]
