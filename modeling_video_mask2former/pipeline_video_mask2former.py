"""The `video-instance-segmentation` pipeline of Video Mask2Former (Hub custom code: imports installed libraries only).

A model folder saved with `save_model_folder` (see `publishing.py`) records this pipeline in its `config.json`
(`custom_pipelines`) and carries this file, so that a Hub user runs

```python
>>> from transformers import pipeline
>>> segmenter = pipeline(model="path/or/hub-id", trust_remote_code=True)
>>> tracks = segmenter("video.mp4")
```
"""

from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image
from transformers import AutoModel, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY


TASK = "video-instance-segmentation"


def _is_frame(frame) -> bool:
    """Whether `frame` is one image: a PIL image or a 2D/3D array or tensor."""
    return isinstance(frame, Image.Image) or (isinstance(frame, (np.ndarray, torch.Tensor)) and frame.ndim in (2, 3))


class VideoInstanceSegmentationPipeline(Pipeline):
    """
    Video instance segmentation: every frame of a video is one clip for the model (the original's inference), and each
    returned track is one object over the whole video.

    Inputs: a video file path or URL (decoded with PyAV), a folder of frame images, a `(T, H, W, C)` array or tensor,
    or a list of frames (PIL images or `(H, W, C)` arrays); a list of such videos gives a list of results.

    Returns, per video, the tracks sorted by descending score, each a dict with `score` (`float`), `label` (`int`,
    0-based), `label_name` (`str`, from `config.id2label`), `query_index` (`int`) and `masks` (`(T, H, W)` bool tensor
    at the input size).

    Call parameters: `top_k` (`int`, defaults to `config.test_top_k`), tracks kept per video.
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False
    _load_video_processor = True

    def __call__(self, videos, **kwargs):
        """Segments one video or a list of videos; a list of frames is one video."""
        if isinstance(videos, list) and videos and _is_frame(videos[0]):
            return super().__call__([videos], **kwargs)[0]
        return super().__call__(videos, **kwargs)

    def _sanitize_parameters(self, top_k: int | None = None):
        postprocess_parameters = {} if top_k is None else {"top_k": top_k}
        return {}, {}, postprocess_parameters

    def preprocess(self, video) -> dict[str, torch.Tensor]:
        inputs = self.video_processor(videos=video, return_tensors="pt")
        return {key: inputs[key] for key in ("pixel_values_videos", "resized_sizes", "original_sizes")}

    def _forward(self, model_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        outputs = self.model(pixel_values_videos=model_inputs["pixel_values_videos"].to(self.dtype))
        return {
            "class_queries_logits": outputs.class_queries_logits,
            "masks_queries_logits": outputs.masks_queries_logits,
            "resized_sizes": model_inputs["resized_sizes"],
            "original_sizes": model_inputs["original_sizes"],
        }

    def postprocess(self, model_outputs: dict[str, torch.Tensor], top_k: int | None = None) -> list[dict]:
        outputs = SimpleNamespace(
            class_queries_logits=model_outputs["class_queries_logits"],
            masks_queries_logits=model_outputs["masks_queries_logits"],
        )
        (tracks,) = self.video_processor.post_process_video_instance_segmentation(
            outputs,
            target_sizes=model_outputs["original_sizes"],
            resized_sizes=model_outputs["resized_sizes"],
            top_k=self.model.config.test_top_k if top_k is None else top_k,
        )
        id2label = self.model.config.id2label
        for track in tracks:
            track["label_name"] = id2label.get(track["label"], str(track["label"]))
        return tracks


def register_video_instance_segmentation_pipeline() -> None:
    """Registers the `video-instance-segmentation` task with transformers' pipeline registry (in-process)."""
    registered = PIPELINE_REGISTRY.supported_tasks.get(TASK, {}).get("impl")
    if registered is not VideoInstanceSegmentationPipeline:
        PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=VideoInstanceSegmentationPipeline, pt_model=AutoModel)


__all__ = ["TASK", "VideoInstanceSegmentationPipeline", "register_video_instance_segmentation_pipeline"]
