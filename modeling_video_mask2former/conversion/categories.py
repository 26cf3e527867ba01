"""Class names of the datasets the original model zoo was trained on, in the models' contiguous label order."""

from ..data.categories import load_categories


# COCO 2017 thing classes in detectron2's contiguous order (the 80 instance-segmentation labels).
COCO_THING_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)  # fmt: skip


def dataset_class_names(dataset_name: str) -> tuple[str, ...] | None:
    """The class names of a detectron2 dataset name (`ytvis_2019_train`, `coco_2017_val`, ...), if it is known."""
    if dataset_name.startswith("coco_2017"):
        return COCO_THING_CLASSES
    for prefix in ("ytvis_2019", "ytvis_2021"):
        if dataset_name.startswith(prefix):
            return tuple(category["name"] for category in load_categories(prefix))
    return None


def class_names_for(dataset_names: list[str], num_classes: int) -> tuple[str, ...] | None:
    """The class names of the first known dataset in `dataset_names` with `num_classes` classes, if any."""
    for dataset_name in dataset_names:
        names = dataset_class_names(dataset_name)
        if names is not None and len(names) == num_classes:
            return names
    return None
