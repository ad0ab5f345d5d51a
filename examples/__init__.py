"""Plain PyTorch Lightning example projects on real data that ships inside installed packages.

Nothing here imports hpo: these are ordinary Lightning projects, run as they are with
``lightning.Trainer`` (see each ``train_plain.py``).
"""
