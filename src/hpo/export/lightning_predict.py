"""`hpo predict MODEL_DIR [INPUT] --output OUT` for a Lightning-path export: the exported
module (rebuilt from best/config.yaml, its weights from model.ckpt loaded with
``weights_only=True``: nothing is unpickled) over the DataModule's ``predict_dataloader()``,
or over INPUT:

- a DataModule that reads a path itself (``INPUT_HOOK``; data=images: an image folder);
- an export whose module wrote files for predict (model.json's ``predict``: data=text's
  tokenizer and the backbone's config.json in best/pretrained/) takes INPUT, a file in the
  training data's format (`hpo predict MODEL_DIR new.csv --output preds.csv`): the config
  keys it names point at those files, ``data.predict_path`` at INPUT."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from hpo.errors import HPOError
from hpo.rundir import BestFiles

MODEL_FORMAT = "hpo-lightning-1"
# A DataModule that predicts a path given on the command line (`hpo predict DIR INPUT`):
# ``hpo_predict_loader(path) -> (DataLoader, examples)``, one example name per row
# (hpo.data.images: every image under a folder, its file path).
INPUT_HOOK = "hpo_predict_loader"


def is_lightning_export(model_dir: str | Path) -> bool:
    manifest = Path(model_dir) / BestFiles.MANIFEST
    try:
        return json.loads(manifest.read_text()).get("format") == MODEL_FORMAT
    except (OSError, ValueError):
        return False


def predict_lightning(
    model_dir: str | Path, output: str, input_path: str | None, overwrite: bool = False
) -> tuple[Path, int]:
    import lightning as L
    import torch
    from omegaconf import OmegaConf

    from hpo.data.datamodule import build_datamodule
    from hpo.export.lightning_export import as_probabilities, module_outputs
    from hpo.models.build import build_lightning_module

    model_dir = Path(model_dir)
    out = Path(output)
    manifest = json.loads((model_dir / BestFiles.MANIFEST).read_text())
    cfg = OmegaConf.to_container(OmegaConf.load(model_dir / BestFiles.CONFIG), resolve=True)
    given = manifest.get("predict")
    if given and input_path is None:
        raise HPOError(
            f"hpo predict {model_dir}: give INPUT, a {given.get('input', 'data')} file in the "
            "training data's format (hpo predict MODEL_DIR FILE --output OUT)."
        )
    if given:
        for key, relative in given.get("files", {}).items():
            _set(cfg, key, str((model_dir / relative).resolve()))
        for key, value in given.get("settings", {}).items():
            _set(cfg, key, value)
        if not Path(input_path).is_file():
            raise HPOError(f"hpo predict: INPUT {input_path} is not a file.")
        _set(cfg, "data.predict_path", str(Path(input_path).resolve()))
    if out.exists() and not overwrite:
        raise HPOError(
            f"--output {out} exists; pass --overwrite to replace it, or choose a new path."
        )
    if out.suffix not in (".csv", ".parquet"):
        raise HPOError(f"--output {out}: write .csv or .parquet.")
    datamodule = build_datamodule(cfg["data"])
    examples = None
    if input_path is not None and not given:
        reader = getattr(datamodule, INPUT_HOOK, None)
        if not callable(reader):
            raise HPOError(
                f"hpo predict {model_dir}: {cfg['data']['_target_']} reads no INPUT (it has "
                f"no {INPUT_HOOK}(path)); drop INPUT to predict its predict_dataloader()."
            )
        loader, examples = reader(str(input_path))
    elif type(datamodule).predict_dataloader is L.LightningDataModule.predict_dataloader:
        raise HPOError(
            f"{cfg['data']['_target_']} has no predict_dataloader(); add one to the DataModule "
            "(Lightning's hook for the rows to predict)."
        )
    else:
        datamodule.prepare_data()
        datamodule.setup("predict")
        loader = datamodule.predict_dataloader()
    module = build_lightning_module(cfg["model"])
    state = torch.load(model_dir / manifest["checkpoint"], weights_only=True, map_location="cpu")
    module.load_state_dict(state["state_dict"])
    outputs, _ = module_outputs(module, loader)
    if manifest["task"] == "classification" and outputs.ndim == 2:
        proba = as_probabilities(outputs)
        classes = manifest.get("class_names") or manifest["classes"]
        frame = pd.DataFrame({"prediction": [classes[i] for i in proba.argmax(axis=1)]})
        for i, c in enumerate(classes):
            frame[f"proba_{c}"] = proba[:, i]
    else:
        frame = pd.DataFrame({"prediction": outputs.reshape(len(outputs), -1)[:, 0]})
    if examples is not None:
        frame.insert(0, "input", examples)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False) if out.suffix == ".csv" else frame.to_parquet(out, index=False)
    return out, len(frame)


def _set(cfg: dict, dotted: str, value) -> None:
    node = cfg
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
