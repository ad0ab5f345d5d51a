"""Built-in fine-tuning LightningModules (images: ``image.py``; text: ``text.py``) and
the pieces they share (``common.py``)."""
