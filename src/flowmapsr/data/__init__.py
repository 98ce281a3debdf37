"""Data: datasets (HR folders, paired folders, plain folders) and degradations (DESIGN.md §4)."""

from __future__ import annotations

from flowmapsr.data.datasets import (
    HRFolderDataset,
    ImageFolderDataset,
    ImageReadError,
    PairedFolderDataset,
    list_images,
    read_image,
)
from flowmapsr.data.degradations import Degradation, make_negative

__all__ = [
    "Degradation",
    "HRFolderDataset",
    "ImageFolderDataset",
    "ImageReadError",
    "PairedFolderDataset",
    "list_images",
    "make_negative",
    "read_image",
]
