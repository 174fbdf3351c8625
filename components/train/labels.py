"""The label map of a classifier: the train split's distinct labels, sorted, numbered from 0.

Labels may be strings or integers in the data; the map keeps them as strings (HF configs and JSON
need string names), sorted numerically when every label is an integer so that ``2`` comes before ``10``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

LABEL_MAP_FILE = "label_map.json"


class LabelError(ValueError):
    """Labels that cannot be mapped: nulls, unsupported types, or labels unknown to the map."""


def label_names(values: pd.Series, source: str) -> list[str]:
    """The labels of a column as strings; ``source`` (e.g. ``"column 'label' of train.parquet"``) names it in errors."""
    null_rows = values.index[values.isna()].tolist()
    if null_rows:
        raise LabelError(f"{source} has empty labels at rows {_first(null_rows)}")
    if pd.api.types.is_bool_dtype(values) or not (
        pd.api.types.is_integer_dtype(values) or pd.api.types.is_string_dtype(values)
    ):
        raise LabelError(f"{source} has dtype {values.dtype}; labels must be strings or integers")
    return [str(value) for value in values.tolist()]


@dataclass(frozen=True)
class LabelMap:
    """Label names in id order: ``labels[i]`` is the name of class id ``i``."""

    labels: tuple[str, ...]

    @classmethod
    def from_train_labels(cls, labels: Iterable[str]) -> LabelMap:
        distinct = set(labels)
        if len(distinct) < 2:
            # One class would also make Hugging Face models switch to regression (num_labels == 1).
            raise LabelError(f"the train split has labels {sorted(distinct)}; a classifier needs at least two")
        if all(_is_integer_text(label) for label in distinct):
            return cls(tuple(sorted(distinct, key=lambda label: (int(label), label))))
        return cls(tuple(sorted(distinct)))

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    @property
    def label2id(self) -> dict[str, int]:
        return {label: index for index, label in enumerate(self.labels)}

    def encode(self, labels: Sequence[str], source: str) -> list[int]:
        """Class ids of ``labels``; a label not in the map raises :class:`LabelError` naming every such label."""
        label2id = self.label2id
        unknown = sorted(set(labels) - label2id.keys())
        if unknown:
            raise LabelError(
                f"{source} has labels not in the train split: {', '.join(map(repr, unknown))} "
                f"(train labels: {', '.join(map(repr, self.labels))})"
            )
        return [label2id[label] for label in labels]

    def save(self, directory: Path) -> None:
        (directory / LABEL_MAP_FILE).write_text(json.dumps({"labels": list(self.labels)}, indent=2) + "\n")


def _is_integer_text(label: str) -> bool:
    return label.lstrip("-").isdigit()


def _first(rows: list, shown: int = 10) -> str:
    text = ", ".join(map(str, rows[:shown]))
    return text + (f" ... ({len(rows)} in all)" if len(rows) > shown else "")
