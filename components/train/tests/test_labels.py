from __future__ import annotations

import random

import pandas as pd
import pytest

from components.train.labels import LabelError, LabelMap, label_names


def test_label_map_is_sorted_and_independent_of_row_order() -> None:
    labels = ["sports", "world", "business", "sports", "tech", "world"]
    shuffled = labels[:]
    random.Random(0).shuffle(shuffled)
    assert LabelMap.from_train_labels(labels).labels == ("business", "sports", "tech", "world")
    assert LabelMap.from_train_labels(shuffled) == LabelMap.from_train_labels(labels)


def test_integer_labels_sort_numerically_and_become_strings() -> None:
    names = label_names(pd.Series([10, 2, 1, 2]), "column 'label'")
    assert names == ["10", "2", "1", "2"]
    label_map = LabelMap.from_train_labels(names)
    assert label_map.labels == ("1", "2", "10")
    assert label_map.id2label == {0: "1", 1: "2", 2: "10"}
    assert label_map.label2id == {"1": 0, "2": 1, "10": 2}


def test_encode_maps_labels_to_ids() -> None:
    label_map = LabelMap.from_train_labels(["neg", "pos"])
    assert label_map.encode(["pos", "neg", "pos"], "eval") == [1, 0, 1]


def test_unknown_labels_are_all_named() -> None:
    label_map = LabelMap.from_train_labels(["neg", "pos"])
    with pytest.raises(LabelError, match=r"eval.parquet column 'label'.*'meh', 'unsure'"):
        label_map.encode(["pos", "unsure", "meh", "unsure"], "eval.parquet column 'label'")


def test_saved_label_map_lists_labels_in_id_order(tmp_path) -> None:
    LabelMap.from_train_labels(["b", "a"]).save(tmp_path)
    assert (tmp_path / "label_map.json").read_text().split() == ["{", '"labels":', "[", '"a",', '"b"', "]", "}"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (pd.Series(["a", None, "b"]), r"empty labels at rows 1"),
        (pd.Series([1.5, 2.0]), r"dtype float64; labels must be strings or integers"),
        (pd.Series([True, False]), r"dtype bool"),
        (pd.Series(["a", 1], dtype=object), r"dtype object"),
    ],
)
def test_bad_label_columns_are_rejected(values: pd.Series, message: str) -> None:
    with pytest.raises(LabelError, match=message):
        label_names(values, "train.parquet column 'label'")


@pytest.mark.parametrize("labels", [[], ["spam", "spam"]])
def test_fewer_than_two_train_labels_are_rejected(labels: list[str]) -> None:
    with pytest.raises(LabelError, match="a classifier needs at least two"):
        LabelMap.from_train_labels(labels)
