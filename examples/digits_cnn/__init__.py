"""A small CNN on scikit-learn's bundled digits, written as a PNG ImageFolder."""

from examples.digits_cnn.data import DigitsImageDataModule, ImageFolderDataset
from examples.digits_cnn.model import LitDigitsCNN

__all__ = ["DigitsImageDataModule", "ImageFolderDataset", "LitDigitsCNN"]
