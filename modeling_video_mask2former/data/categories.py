"""Category lists of YouTube-VIS 2019/2021 and OVIS, and the mapping between model labels and dataset category ids.

Model labels are contiguous and 0-based, in the order of the dataset's categories sorted by id (as detectron2's
`thing_dataset_id_to_contiguous_id`); the dataset's own category ids (1-based in all three datasets) are what the
annotation and result files use.
"""

import json
from dataclasses import dataclass
from pathlib import Path


CATEGORY_FILES = {
    "ytvis_2019": "ytvis_2019_categories.json",
    "ytvis_2021": "ytvis_2021_categories.json",
    "ovis": "ovis_categories.json",
}


def load_categories(name: str) -> list[dict]:
    """The categories of a known dataset (`"ytvis_2019"`, `"ytvis_2021"` or `"ovis"`), as in its annotation files.

    Returns a list of `{"supercategory", "id", "name"}` dicts sorted by id.
    """
    if name not in CATEGORY_FILES:
        raise ValueError(f"Unknown dataset {name!r}; known datasets: {', '.join(CATEGORY_FILES)}.")
    with open(Path(__file__).parent / CATEGORY_FILES[name]) as handle:
        return sorted(json.load(handle), key=lambda category: category["id"])


@dataclass(frozen=True)
class CategoryMapping:
    """Model labels (0-based, contiguous) ↔ dataset category ids, built from a list of categories sorted by id."""

    category_ids: tuple[int, ...]
    names: tuple[str, ...]

    @classmethod
    def from_categories(cls, categories: list[dict]) -> "CategoryMapping":
        """Builds the mapping from `[{"id", "name"}, ...]` (any order; labels follow ascending ids)."""
        ordered = sorted(categories, key=lambda category: category["id"])
        ids = tuple(int(category["id"]) for category in ordered)
        names = tuple(str(category["name"]) for category in ordered)
        if len(set(ids)) != len(ids):
            raise ValueError(f"Category ids are not unique: {list(ids)}.")
        if len(set(names)) != len(names):
            raise ValueError(f"Category names are not unique: {list(names)}.")
        return cls(category_ids=ids, names=names)

    @classmethod
    def from_dataset(cls, name: str) -> "CategoryMapping":
        """The mapping of a known dataset (see `load_categories`)."""
        return cls.from_categories(load_categories(name))

    @property
    def num_labels(self) -> int:
        return len(self.category_ids)

    @property
    def id2label(self) -> dict[int, str]:
        """Model label → class name, as transformers configs store it."""
        return dict(enumerate(self.names))

    @property
    def label2id(self) -> dict[str, int]:
        """Class name → model label, as transformers configs store it."""
        return {name: label for label, name in enumerate(self.names)}

    def label_to_category_id(self, label: int) -> int:
        """The dataset category id of model label `label`."""
        if not 0 <= label < self.num_labels:
            raise ValueError(f"Label {label} is out of range for {self.num_labels} categories.")
        return self.category_ids[label]

    def category_id_to_label(self, category_id: int) -> int:
        """The model label of dataset category id `category_id`."""
        try:
            return self.category_ids.index(category_id)
        except ValueError:
            raise ValueError(f"Unknown category id {category_id}; known ids: {list(self.category_ids)}.") from None
