"""Video processor of Video Mask2Former: the original's test-time input pipeline and per-track post-processing."""

import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import ChannelDimension, PILImageResampling, SizeDict, infer_channel_dimension_format
from transformers.processing_utils import VideosKwargs
from transformers.utils import TensorType
from transformers.video_processing_utils import BaseVideoProcessor
from transformers.utils import is_av_available
from transformers.video_utils import VideoMetadata, is_valid_video_frame, load_video


if is_av_available():
    import av


class VideoMask2FormerVideoProcessorKwargs(VideosKwargs, total=False):
    r"""
    size_divisor (`int`, *optional*, defaults to `32`):
        Frames are zero-padded at the bottom/right, after normalization, to a multiple of this.
    """

    size_divisor: int


def get_resize_output_size(height: int, width: int, shortest_edge: int, longest_edge: int | None) -> tuple[int, int]:
    """(height, width) after detectron2's `ResizeShortestEdge`: short side to `shortest_edge`, long side capped."""
    scale = shortest_edge / min(height, width)
    new_height, new_width = (shortest_edge, scale * width) if height < width else (scale * height, shortest_edge)
    if longest_edge is not None and max(new_height, new_width) > longest_edge:
        scale = longest_edge / max(new_height, new_width)
        new_height, new_width = new_height * scale, new_width * scale
    return int(new_height + 0.5), int(new_width + 0.5)


def _read_frame(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB frame read as detectron2's `read_image(format="RGB")` does."""
    try:
        with Image.open(path) as image:
            return np.array(ImageOps.exif_transpose(image).convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"Cannot read {path!r} as an image: a frame directory must hold only frame images.") from error


def load_video_file(path: str, sample_indices_fn=None) -> tuple[np.ndarray, VideoMetadata]:
    """
    Decodes every frame of a local video file with PyAV, also from containers that do not record their frame count.
    Returns `(T, H, W, 3)` uint8 RGB frames and their metadata.
    """
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or 0)
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    except (av.FFmpegError, IndexError) as error:
        raise ValueError(f"Cannot decode {path!r} as a video: {error}") from error
    if not frames:
        raise ValueError(f"The video {path!r} holds no frames.")
    metadata = VideoMetadata(total_num_frames=len(frames), fps=fps, video_backend="pyav")
    indices = list(sample_indices_fn(metadata=metadata)) if sample_indices_fn is not None else list(range(len(frames)))
    video = np.stack([frames[index] for index in indices])
    metadata.update({"height": video.shape[1], "width": video.shape[2], "frames_indices": indices})
    return video, metadata


def load_frame_directory(directory: str, sample_indices_fn=None) -> tuple[np.ndarray, VideoMetadata]:
    """
    Reads a folder of frame images (YouTube-VIS layout) as one video, frames sorted by file name; hidden files and
    sub-folders are skipped. Returns `(T, H, W, 3)` uint8 RGB frames and their metadata.
    """
    names = sorted(
        name
        for name in os.listdir(directory)
        if not name.startswith(".") and os.path.isfile(os.path.join(directory, name))
    )
    if not names:
        raise ValueError(f"The frame directory {directory!r} holds no frames.")
    metadata = VideoMetadata(total_num_frames=len(names), video_backend="pil")
    indices = sample_indices_fn(metadata=metadata) if sample_indices_fn is not None else range(len(names))
    paths = [os.path.join(directory, names[index]) for index in indices]
    frames = []
    for path in paths:
        frame = _read_frame(path)
        if frames and frame.shape != frames[0].shape:
            raise ValueError(
                f"Frame {path!r} is {frame.shape[0]}x{frame.shape[1]} but {paths[0]!r} is "
                f"{frames[0].shape[0]}x{frames[0].shape[1]}: all frames of a video must have the same size."
            )
        frames.append(frame)
    metadata.update({"height": frames[0].shape[0], "width": frames[0].shape[1], "frames_indices": list(indices)})
    return np.stack(frames), metadata


def _frames_to_arrays(videos):
    """Turns PIL frames into RGB arrays (`convert("RGB")`, as detectron2 reads images) and checks that the frames of
    each video given as a list of frames have one shape."""
    if isinstance(videos, Image.Image):
        return np.array(videos.convert("RGB"))
    if not isinstance(videos, (list, tuple)):
        return videos
    if len(videos) == 0:
        raise ValueError("Got a video with no frames.")
    videos = [_frames_to_arrays(video) for video in videos]
    if all(is_valid_video_frame(frame) for frame in videos):
        for index, frame in enumerate(videos):
            if frame.shape != videos[0].shape:
                raise ValueError(
                    f"Frame {index} has shape {tuple(frame.shape)} but frame 0 has shape {tuple(videos[0].shape)}: "
                    "all frames of a video must have the same size."
                )
    return videos


class VideoMask2FormerVideoProcessor(BaseVideoProcessor):
    r"""
    Video processor of Video Mask2Former, reproducing the original test-time pipeline (`YTVISDatasetMapper` and
    `ImageList.from_tensors`):

    1. resize so the shorter side is `size["shortest_edge"]` (360; 480 for most Swin models) and the longer side at
       most `size["longest_edge"]` (1333; no cap when absent, e.g. for `size=480`), sizes rounded as detectron2 does,
       each uint8 frame resized by PIL bilinear;
    2. `(x - image_mean) / image_std` on the 0-255 scale (no rescaling);
    3. zero-pad at the bottom/right to a multiple of `size_divisor` (32) and, across a batch, to the largest video.

    Videos are lists of PIL frames, `(T, H, W, C)` / `(T, C, H, W)` uint8 arrays or tensors, batches of these, video
    file paths or URLs (decoded with PyAV) or folders of frame images (sorted by file name). Grayscale frames are
    repeated to RGB; RGBA frames lose their alpha channel (as PIL's `convert("RGB")` does). All videos of a batch must
    have the same number of frames.

    Calling the processor returns a [`~transformers.BatchFeature`] with
    - `pixel_values_videos`: `(batch, T, 3, Hp, Wp)` float32;
    - `pixel_mask`: `(batch, T, Hp, Wp)` int64, 1 on real pixels and 0 on padding;
    - `resized_sizes`: `(batch, 2)` int64, each video's `(height, width)` after resizing, before padding;
    - `original_sizes`: `(batch, 2)` int64, each video's input `(height, width)`.
    """

    resample = PILImageResampling.BILINEAR
    image_mean = (123.675, 116.28, 103.53)
    image_std = (58.395, 57.12, 57.375)
    size = {"shortest_edge": 360, "longest_edge": 1333}
    size_divisor = 32
    default_to_square = False
    do_resize = True
    do_rescale = False
    do_normalize = True
    do_convert_rgb = True
    do_sample_frames = False
    valid_kwargs = VideoMask2FormerVideoProcessorKwargs
    model_input_names = ["pixel_values_videos", "pixel_mask"]

    def fetch_videos(self, video_url_or_urls: str | list[str], sample_indices_fn=None):
        """Decodes video files and URLs with PyAV and reads folders of frame images; returns videos and metadata."""
        if isinstance(video_url_or_urls, (list, tuple)):
            return list(zip(*[self.fetch_videos(x, sample_indices_fn=sample_indices_fn) for x in video_url_or_urls]))
        path = video_url_or_urls
        if os.path.isdir(path):
            return load_frame_directory(path, sample_indices_fn=sample_indices_fn)
        if not (os.path.isfile(path) or path.startswith(("http://", "https://"))):
            raise FileNotFoundError(f"No video file or frame directory at {path!r}.")
        if os.path.isfile(path):
            return load_video_file(path, sample_indices_fn=sample_indices_fn)
        return load_video(path, backend="pyav", sample_indices_fn=sample_indices_fn)

    def _decode_and_sample_videos(self, videos, **kwargs):
        """Reads paths (see `fetch_videos`) and samples frames as transformers does, after `_frames_to_arrays`."""
        return super()._decode_and_sample_videos(_frames_to_arrays(videos), **kwargs)

    def _prepare_input_videos(
        self,
        videos: list,
        do_convert_rgb: bool | None = None,
        input_data_format: str | ChannelDimension | None = None,
        device: str | None = None,
    ) -> list[torch.Tensor]:
        """Returns each video as a `(T, C, H, W)` uint8 tensor, RGB when `do_convert_rgb`."""
        prepared = []
        for video in videos:
            video = torch.from_numpy(np.ascontiguousarray(video)) if isinstance(video, np.ndarray) else video
            if video.shape[0] == 0:
                raise ValueError("Got a video with no frames.")
            if video.dtype != torch.uint8:
                raise TypeError(f"Frames must be uint8 (0-255) as the original reads them; got {video.dtype}.")
            data_format = (
                ChannelDimension(input_data_format)
                if input_data_format is not None
                else infer_channel_dimension_format(video, num_channels=(1, 3, 4))
            )
            if data_format == ChannelDimension.LAST:
                video = video.permute(0, 3, 1, 2)
            if do_convert_rgb:
                video = video.expand(-1, 3, -1, -1) if video.shape[1] == 1 else video[:, :3]
            video = video.contiguous()
            prepared.append(video.to(device) if device is not None else video)
        return prepared

    def resize(
        self, video: torch.Tensor, size: SizeDict, resample: PILImageResampling | int | None = None, **kwargs
    ) -> torch.Tensor:
        """
        Resizes `(T, 3, H, W)` uint8 frames as detectron2's test-time `ResizeShortestEdge`: one PIL resize per frame
        (bit-exact with the original), to the size given by [`get_resize_output_size`].
        """
        if not size.shortest_edge:
            raise ValueError(f"`size` must have a 'shortest_edge' (and optionally 'longest_edge'); got {dict(size)}.")
        height, width = video.shape[-2:]
        new_height, new_width = get_resize_output_size(height, width, size.shortest_edge, size.longest_edge)
        resample = self.resample if resample is None else resample
        frames = video.permute(0, 2, 3, 1).cpu().numpy()
        resized = [np.array(Image.fromarray(frame).resize((new_width, new_height), resample)) for frame in frames]
        return torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2).to(video.device)

    def _preprocess(
        self,
        videos: list[torch.Tensor],
        do_resize: bool,
        size: SizeDict,
        resample: PILImageResampling | int | None,
        do_rescale: bool,
        rescale_factor: float,
        do_normalize: bool,
        image_mean: tuple[float, ...],
        image_std: tuple[float, ...],
        size_divisor: int | None = None,
        return_tensors: str | TensorType | None = None,
        **kwargs,
    ) -> BatchFeature:
        num_frames = [video.shape[0] for video in videos]
        if len(set(num_frames)) > 1:
            raise ValueError(
                f"All videos of a batch must have the same number of frames; got {num_frames}. Process them separately."
            )
        original_sizes = [tuple(video.shape[-2:]) for video in videos]
        if do_resize:
            videos = [self.resize(video, size=size, resample=resample) for video in videos]
        resized_sizes = [tuple(video.shape[-2:]) for video in videos]
        videos = [
            self.rescale_and_normalize(video, do_rescale, rescale_factor, do_normalize, image_mean, image_std)
            for video in videos
        ]

        divisor = size_divisor or 1
        padded_height = math.ceil(max(height for height, _ in resized_sizes) / divisor) * divisor
        padded_width = math.ceil(max(width for _, width in resized_sizes) / divisor) * divisor
        pixel_values = videos[0].new_zeros(
            (len(videos), num_frames[0], videos[0].shape[1], padded_height, padded_width), dtype=torch.float32
        )
        pixel_mask = torch.zeros(
            (len(videos), num_frames[0], padded_height, padded_width), dtype=torch.long, device=videos[0].device
        )
        for index, (video, (height, width)) in enumerate(zip(videos, resized_sizes)):
            pixel_values[index, :, :, :height, :width] = video
            pixel_mask[index, :, :height, :width] = 1

        data = {
            "pixel_values_videos": pixel_values,
            "pixel_mask": pixel_mask,
            "resized_sizes": torch.tensor(resized_sizes, dtype=torch.long),
            "original_sizes": torch.tensor(original_sizes, dtype=torch.long),
        }
        return BatchFeature(data=data, tensor_type=return_tensors)

    def post_process_video_instance_segmentation(
        self,
        outputs,
        target_sizes: list[tuple[int, int]] | torch.Tensor | None = None,
        resized_sizes: list[tuple[int, int]] | torch.Tensor | None = None,
        top_k: int = 10,
    ) -> list[list[dict]]:
        """
        Turns model outputs into tracks as the original's `inference_video` does: scores are
        `softmax(class logits)[:, :-1]` (no mask score), the top-k is taken over all queries x classes (so one query
        can appear with two labels), and each chosen query's mask logits are upsampled 4x to the padded size, cropped
        to the resized size, resized to the target size (bilinear, `align_corners=False`) and thresholded at 0.

        Args:
            outputs:
                Model output with `class_queries_logits` `(batch, Q, K + 1)` and `masks_queries_logits`
                `(batch, Q, T, Hp / 4, Wp / 4)`.
            target_sizes (`list[tuple[int, int]]` or `torch.Tensor`, *optional*):
                Per video, the `(height, width)` of the returned masks, usually the processor's `original_sizes`.
                Defaults to the resized size.
            resized_sizes (`list[tuple[int, int]]` or `torch.Tensor`, *optional*):
                Per video, the `(height, width)` before padding (the processor's `resized_sizes`). Defaults to the
                padded size.
            top_k (`int`, *optional*, defaults to 10):
                Tracks kept per video.

        Returns:
            `list[list[dict]]`: per video, tracks sorted by descending score, each a dict with `score` (`float`),
            `label` (`int`, 0-based class index), `query_index` (`int`) and `masks` (`(T, height, width)` bool tensor).
        """
        class_logits = outputs.class_queries_logits
        mask_logits = outputs.masks_queries_logits
        padded_size = (mask_logits.shape[-2] * 4, mask_logits.shape[-1] * 4)
        results = []
        for index in range(class_logits.shape[0]):
            resized_height, resized_width = (
                padded_size if resized_sizes is None else (int(x) for x in resized_sizes[index])
            )
            target_size = (
                (resized_height, resized_width)
                if target_sizes is None
                else tuple(int(x) for x in target_sizes[index])
            )
            scores = class_logits[index].float().softmax(-1)[:, :-1]
            num_labels = scores.shape[-1]
            top_scores, top_indices = scores.flatten().topk(min(top_k, scores.numel()))
            tracks = []
            for score, flat_index in zip(top_scores.tolist(), top_indices.tolist()):
                query_index = flat_index // num_labels
                masks = mask_logits[index, query_index][None].float()
                masks = F.interpolate(masks, size=padded_size, mode="bilinear", align_corners=False)
                masks = masks[..., :resized_height, :resized_width]
                masks = F.interpolate(masks, size=target_size, mode="bilinear", align_corners=False)
                tracks.append(
                    {"score": score, "label": flat_index % num_labels, "query_index": query_index, "masks": masks[0] > 0}
                )
            results.append(tracks)
        return results


__all__ = ["VideoMask2FormerVideoProcessor"]
