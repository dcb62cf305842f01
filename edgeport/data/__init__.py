"""Datasets, deterministic splits and calibration subsets."""

from edgeport.data.dataset import Dataset, Normalizer
from edgeport.data.loaders import DATASETS, list_datasets, load_dataset
from edgeport.data.splits import Splits, calibration_subset, split_dataset

__all__ = [
    "DATASETS",
    "Dataset",
    "Normalizer",
    "Splits",
    "calibration_subset",
    "list_datasets",
    "load_dataset",
    "split_dataset",
]
