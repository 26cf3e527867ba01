"""Inference on long videos, window by window, with frames streamed from disk.

Full mode (the original's inference, and the default everywhere) runs the model once on all frames of a video, so its
memory grows with the video length. Windowed mode runs the model on windows of `window_size` frames that overlap by
`overlap` frames (the last window is shifted back to end on the last frame, so it may overlap more), and links the
tracks of consecutive windows:

- each window gives tracks exactly as full mode gives them for that clip (top-k over queries x classes);
- a track of window `w` and a track of window `w + 1` are linked when they have the same label (a track is a
  (query, label) pair, and one query may give two tracks with the same masks) and the IoU of their output masks
  pooled over the shared frames (sum of intersections over sum of unions) is at least `min_iou`; the pairing
  maximises the total IoU (`scipy.optimize.linear_sum_assignment`). Query embeddings are not used: the model is
  trained on clip-level matching, not to make embeddings of different clips comparable, while the shared frames are
  seen by both windows and their masks compare directly;
- a linked track keeps the earlier window's masks on the shared frames; an unlinked track ends (or starts) there and
  its masks are empty elsewhere, so `n` windows give between `top_k` and `n * top_k` tracks;
- a track's score is the mean of its window scores.

Finished frames are kept only as per-frame compressed RLE (pycocotools), so memory does not grow with the video length
beyond the RLE itself. On a video of at most `window_size` frames there is one window and the result is exactly full
mode's.
"""

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import av
import numpy as np
import torch
from PIL import ExifTags, Image, UnidentifiedImageError
from pycocotools import mask as mask_utils
from scipy.optimize import linear_sum_assignment

from .modeling_video_mask2former import VideoMask2FormerForVideoInstanceSegmentation
from .results import encode_masks
from .video_processing_video_mask2former import VideoMask2FormerVideoProcessor, _read_frame


@dataclass
class VideoInfo:
    """What `probe_video` learns about a video without decoding it all."""

    num_frames: int | None  # None when a video container does not record it
    fps: float | None  # None for frame directories
    height: int
    width: int


@dataclass
class _Track:
    label: int
    first_frame: int
    segmentations: list[dict] = field(default_factory=list)
    window_scores: list[float] = field(default_factory=list)


def _frame_paths(directory: str) -> list[str]:
    """Frame files of a frame directory, sorted by name, hidden files and sub-folders skipped (as the processor)."""
    names = sorted(
        name
        for name in os.listdir(directory)
        if not name.startswith(".") and os.path.isfile(os.path.join(directory, name))
    )
    return [os.path.join(directory, name) for name in names]


def _check_same_size(path: str, size: tuple[int, ...], first_path: str, first_size: tuple[int, ...]) -> None:
    if size[:2] != first_size[:2]:
        raise ValueError(
            f"Frame {path!r} is {size[0]}x{size[1]} but {first_path!r} is {first_size[0]}x{first_size[1]}: all frames "
            "of a video must have the same size."
        )


def _frame_size(path: str) -> tuple[int, int]:
    """`(height, width)` of a frame image after its EXIF orientation, read from the file header only."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            transposed = image.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(
            f"Cannot read {path!r} as an image: a frame directory must hold only frame images."
        ) from error
    return (width, height) if transposed else (height, width)


def iter_video_frames(source: str | os.PathLike) -> Iterator[np.ndarray]:
    """
    Yields the `(H, W, 3)` uint8 RGB frames of a video file (decoded with PyAV, as the video processor does) or of a
    folder of frame images (sorted by file name), one at a time. Raises `FileNotFoundError` or `ValueError` with a
    message naming the file or frame at fault.
    """
    source = os.fspath(source)
    if os.path.isdir(source):
        paths = _frame_paths(source)
        if not paths:
            raise ValueError(f"The frame directory {source!r} holds no frames.")
        first_shape = None
        for path in paths:
            frame = _read_frame(path)
            first_shape = frame.shape if first_shape is None else first_shape
            _check_same_size(path, frame.shape, paths[0], first_shape)
            yield frame
        return
    if not os.path.isfile(source):
        raise FileNotFoundError(f"No video file or frame directory at {source!r}.")
    try:
        container = av.open(source)
    except av.error.FFmpegError as error:
        raise ValueError(f"Cannot open {source!r} as a video: {error.strerror or error}.") from error
    with container:
        if not container.streams.video:
            raise ValueError(f"{source!r} holds no video frames: it has no video stream.")
        index = -1
        try:
            for index, frame in enumerate(container.decode(video=0)):
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as error:
            raise ValueError(f"Cannot decode frame {index + 1} of {source!r}: {error.strerror or error}.") from error
    if index < 0:
        raise ValueError(f"{source!r} holds no video frames.")


def probe_video(source: str | os.PathLike) -> VideoInfo:
    """
    Checks that `source` can be read and returns its frame count, fps and size: decodes the first frame of a video
    file; reads the header of every frame of a frame directory (so a stray file or a frame of another size fails here,
    before any inference).
    """
    source = os.fspath(source)
    frames = iter_video_frames(source)
    height, width = next(frames).shape[:2]
    frames.close()
    if os.path.isdir(source):
        paths = _frame_paths(source)
        for path in paths:
            _check_same_size(path, _frame_size(path), paths[0], (height, width))
        return VideoInfo(num_frames=len(paths), fps=None, height=height, width=width)
    with av.open(source) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate) if stream.average_rate else None
        return VideoInfo(num_frames=stream.frames or None, fps=fps, height=height, width=width)


def segment_clip(
    model: VideoMask2FormerForVideoInstanceSegmentation,
    video_processor: VideoMask2FormerVideoProcessor,
    frames: list[np.ndarray],
    top_k: int,
    chunk_size: int = 16,
) -> list[dict]:
    """
    Full-mode inference on one clip of `(H, W, 3)` uint8 frames: the tracks of the processor's
    `post_process_video_instance_segmentation` (same selection and masks, post-processed `chunk_size` frames at a time
    to bound memory), each with its masks as per-frame RLE.

    Returns:
        `list[dict]`: tracks sorted by descending score, each with `score`, `label`, `query_index` and
        `segmentations` (one `{"size": [H, W], "counts": str}` per frame).
    """
    inputs = video_processor(videos=np.stack(frames), return_tensors="pt")
    with torch.inference_mode():
        outputs = model(pixel_values_videos=inputs["pixel_values_videos"].to(model.device, model.dtype))
    tracks = []
    for start in range(0, len(frames), chunk_size):
        chunk = SimpleNamespace(
            class_queries_logits=outputs.class_queries_logits,
            masks_queries_logits=outputs.masks_queries_logits[:, :, start : start + chunk_size],
        )
        (chunk_tracks,) = video_processor.post_process_video_instance_segmentation(
            chunk, target_sizes=inputs["original_sizes"], resized_sizes=inputs["resized_sizes"], top_k=top_k
        )
        if start == 0:
            tracks = [
                {key: track[key] for key in ("score", "label", "query_index")} | {"segmentations": []}
                for track in chunk_tracks
            ]
        for track, chunk_track in zip(tracks, chunk_tracks):
            track["segmentations"].extend(encode_masks(chunk_track["masks"]))
    return tracks


def pooled_mask_iou(first: list[list[dict]], second: list[list[dict]]) -> np.ndarray:
    """
    IoU of every pair of tracks over the same frames, pooled over frames (sum of intersections over sum of unions; 0
    when both are empty). `first` and `second` hold, per track, one RLE per shared frame. Returns `(len(first),
    len(second))`.
    """
    intersection = np.zeros((len(first), len(second)))
    union = np.zeros((len(first), len(second)))
    if not first or not second:
        return intersection
    for frame in range(len(first[0])):
        rles_a = [track[frame] for track in first]
        rles_b = [track[frame] for track in second]
        areas = mask_utils.area(rles_a).astype(float)[:, None] + mask_utils.area(rles_b).astype(float)[None]
        iou = np.asarray(mask_utils.iou(rles_a, rles_b, [0] * len(rles_b))).reshape(len(rles_a), len(rles_b))
        frame_intersection = iou * areas / (1 + iou)  # from iou = i / (a + b - i)
        intersection += frame_intersection
        union += areas - frame_intersection
    return np.divide(intersection, union, out=np.zeros_like(union), where=union > 0)


def link_tracks(
    iou: np.ndarray, labels_a: list[int], labels_b: list[int], min_iou: float = 0.5
) -> list[tuple[int, int]]:
    """
    Pairs tracks of two consecutive windows: among pairs with equal labels, the assignment maximising the total IoU
    (`iou` of shape `(len(labels_a), len(labels_b))`), keeping pairs with IoU >= `min_iou`. Returns `(a, b)` pairs.
    """
    similarity = np.where(np.equal.outer(labels_a, labels_b), iou, -1.0)
    rows, columns = linear_sum_assignment(similarity, maximize=True)
    return [(int(a), int(b)) for a, b in zip(rows, columns) if similarity[a, b] >= min_iou]


def segment_video_windowed(
    model: VideoMask2FormerForVideoInstanceSegmentation,
    video_processor: VideoMask2FormerVideoProcessor,
    frames: Iterable[np.ndarray],
    window_size: int,
    overlap: int = 4,
    top_k: int | None = None,
    min_iou: float = 0.5,
    on_window: Callable[[int], None] | None = None,
) -> list[dict]:
    """
    Windowed inference (see the module docstring) on a stream of `(H, W, 3)` uint8 frames, e.g.
    `iter_video_frames(path)`; at most `window_size` frames are held at a time.

    Args:
        window_size (`int`): frames per window.
        overlap (`int`, *optional*, defaults to 4): frames shared by consecutive windows, `1 <= overlap < window_size`.
        top_k (`int`, *optional*): tracks per window, defaults to `model.config.test_top_k`.
        min_iou (`float`, *optional*, defaults to 0.5): smallest pooled mask IoU that links two tracks, in `(0, 1]`.
        on_window (`Callable[[int], None]`, *optional*): called after each window with the number of frames it
            finished (for progress bars; the calls add up to the frame count).

    Returns:
        `list[dict]`: tracks sorted by descending score, each with `score` (mean of its window scores), `label` and
        `segmentations` (one RLE per frame of the video, empty where the track is absent).
    """
    if not 1 <= overlap < window_size:
        raise ValueError(f"Need 1 <= overlap < window_size; got overlap={overlap}, window_size={window_size}.")
    if not 0 < min_iou <= 1:
        raise ValueError(f"min_iou must be in (0, 1]; got {min_iou}.")
    top_k = model.config.test_top_k if top_k is None else top_k

    tracks: list[_Track] = []
    buffer: deque[np.ndarray] = deque(maxlen=window_size)
    previous: tuple[int, int, list[dict], list[int]] | None = None  # start, end, tracks and their ids in `tracks`

    def run_window(start: int) -> None:
        nonlocal previous
        end = start + len(buffer)
        window = segment_clip(model, video_processor, list(buffer), top_k)
        shared, links = 0, {}
        if previous is not None:
            previous_start, previous_end, previous_window, previous_ids = previous
            shared = previous_end - start
            iou = pooled_mask_iou(
                [track["segmentations"][start - previous_start :] for track in previous_window],
                [track["segmentations"][:shared] for track in window],
            )
            pairs = link_tracks(
                iou, [track["label"] for track in previous_window], [track["label"] for track in window], min_iou
            )
            links = {b: previous_ids[a] for a, b in pairs}
        ids = []
        for index, window_track in enumerate(window):
            if index in links:
                track_id = links[index]
                tracks[track_id].segmentations.extend(window_track["segmentations"][shared:])
            else:
                track_id = len(tracks)
                tracks.append(_Track(window_track["label"], start, list(window_track["segmentations"])))
            tracks[track_id].window_scores.append(window_track["score"])
            ids.append(track_id)
        previous = (start, end, window, ids)
        if on_window is not None:
            on_window(end - start - shared)

    num_frames, next_start, frame_shape = 0, 0, None
    for frame in frames:
        frame_shape = frame.shape if frame_shape is None else frame_shape
        if frame.shape != frame_shape:
            raise ValueError(
                f"Frame {num_frames} has shape {tuple(frame.shape)} but frame 0 has shape {tuple(frame_shape)}: all "
                "frames of a video must have the same size."
            )
        buffer.append(frame)
        num_frames += 1
        if num_frames == next_start + window_size:
            run_window(next_start)
            next_start += window_size - overlap
    if num_frames == 0:
        raise ValueError("Got a video with no frames.")
    if previous is None or previous[1] < num_frames:
        run_window(num_frames - len(buffer))

    empty = encode_masks(np.zeros((1, *frame_shape[:2]), dtype=bool))[0]
    results = [
        {
            "score": sum(track.window_scores) / len(track.window_scores),
            "label": track.label,
            "segmentations": [empty] * track.first_frame
            + track.segmentations
            + [empty] * (num_frames - track.first_frame - len(track.segmentations)),
        }
        for track in tracks
    ]
    return sorted(results, key=lambda track: -track["score"])


__all__ = [
    "VideoInfo",
    "iter_video_frames",
    "link_tracks",
    "pooled_mask_iou",
    "probe_video",
    "segment_clip",
    "segment_video_windowed",
]
