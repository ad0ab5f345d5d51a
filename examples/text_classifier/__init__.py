"""Which language is an emoji name in? Embedding + CNN/GRU on the names the emoji package ships."""

from examples.text_classifier.data import EmojiNamesDataModule
from examples.text_classifier.model import LitTextClassifier

__all__ = ["EmojiNamesDataModule", "LitTextClassifier"]
