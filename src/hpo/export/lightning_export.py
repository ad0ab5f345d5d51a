"""Export the best trial of a Lightning-path sweep (a user's LightningModule and
DataModule) into RUN_DIR/best, with its report.

Refit: one module with the best hyperparameters, trained with the same Trainer settings
(and the user's callbacks) on every non-test row for the median of the folds'
early-stopping epochs (no rows are left to stop on; its validation loop runs on its own
training rows, so that monitored schedulers work). Then, into a staging folder renamed
to ``best/`` at the end (a half-written export is never ``best/``): the Lightning
checkpoint (``model.ckpt``, checked to load with ``torch.load(weights_only=True)``), the
resolved config, ONNX when ``to_onnx`` works for the module (else the reason, in the
report), the test metrics from the held-out test rows no trial saw, and inference timing.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

import hpo
from hpo.config import load_run_config
from hpo.data.datamodule import FoldPlan, build_datamodule, heldout_loader, module_data, rows_loader
from hpo.errors import HPOError
from hpo.export.baselines import baselines_enabled
from hpo.export.lightning_predict import MODEL_FORMAT
from hpo.export.lightning_report import write_lightning_report
from hpo.export.metrics import classification_metrics, regression_metrics
from hpo.export.refit import best_trial_config, refit_epochs
from hpo.export.staging import begin_staging, publish
from hpo.models.build import build_lightning_module
from hpo.rundir import BEST, BestFiles
from hpo.space import build_search_space
from hpo.train.lightning_folds import (
    instantiate_specs,
    quiet_lightning,
    scalar_metrics,
    trainer_kwargs,
)

CHECKPOINT_FILE = BestFiles.CHECKPOINT
ONNX_FILE = BestFiles.ONNX
MANIFEST_FILE = BestFiles.MANIFEST
CONFIG_FILE = BestFiles.CONFIG
EXPORT_FILE = BestFiles.EXPORT
TEST_PREDICTIONS_FILE = BestFiles.TEST_PREDICTIONS
BEST_DIR = BEST


def split_batch(batch: Any) -> tuple[Any, Any]:
    """``(x, y)`` of a batch: a tuple/list's first two items, or a dict's ``x``/``input``
    and label key; ``y`` None when the batch carries no label."""
    if isinstance(batch, (tuple, list)):
        return batch[0], (batch[1] if len(batch) > 1 else None)
    if isinstance(batch, dict):
        x = next(
            (batch[k] for k in ("x", "input", "inputs", "image", "images") if k in batch), batch
        )
        y = next((batch[k] for k in ("y", "label", "labels", "target") if k in batch), None)
        return x, y
    return batch, None


def module_outputs(module: L.LightningModule, loader) -> tuple[np.ndarray, np.ndarray | None]:
    """``module(x)`` over a loader (eval mode, no grad) and the labels, as arrays."""
    outputs, labels = [], []
    module.eval()
    with torch.no_grad():
        for batch in loader:
            x, y = split_batch(batch)
            x = x.to(module.device) if isinstance(x, torch.Tensor) else x
            outputs.append(module(x).float().cpu().numpy())
            labels.append(None if y is None else torch.as_tensor(y).cpu().numpy())
    known = all(y is not None for y in labels)
    return np.concatenate(outputs), (np.concatenate(labels) if known else None)


def as_probabilities(outputs: np.ndarray) -> np.ndarray:
    """Class probabilities: the outputs if they already are, else their softmax."""
    if (
        outputs.ndim == 2
        and np.all(outputs >= 0)
        and np.allclose(outputs.sum(axis=1), 1, atol=1e-4)
    ):
        return outputs
    shifted = outputs - outputs.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def class_positions(labels: np.ndarray, classes: list) -> np.ndarray:
    """Each label's position in ``classes`` (-1: unknown). Integer labels with classes that
    are names (data=text's batches carry the index of the sorted class name) are indices."""
    lookup = {c: i for i, c in enumerate(classes)}
    values = labels.tolist()
    if labels.dtype.kind in "iu" and not any(isinstance(c, (int, np.integer)) for c in classes):
        return np.asarray([v if 0 <= v < len(classes) else -1 for v in values])
    return np.asarray([lookup.get(v, -1) for v in values])


def test_metrics(plan: FoldPlan, outputs: np.ndarray, labels: np.ndarray | None) -> dict:
    if labels is None:
        return {"rows": int(len(outputs)), "note": "the test batches carry no labels"}
    if plan.task == "classification" and outputs.ndim == 2:
        y = class_positions(labels, plan.classes)
        if (y < 0).any():
            raise HPOError("the test labels hold classes the folds never saw.")
        return classification_metrics(y, as_probabilities(outputs), plan.classes)
    preds = outputs.reshape(len(outputs), -1)[:, 0]
    truth = labels.astype(np.float64).reshape(-1)
    return regression_metrics(truth, preds, float(np.std(truth)) or 1.0)


def _timed(call, repeats: int = 30) -> dict[str, float]:
    for _ in range(3):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return {
        "p50_ms": 1000 * float(np.median(times)),
        "p95_ms": 1000 * float(np.percentile(times, 95)),
    }


def onnx_feed(sample: Any) -> dict[str, Any]:
    """The ONNX graph's inputs for a batch's ``x``: ``input`` for one tensor; a dict of
    tensors (a tokenizer's ``input_ids``/``attention_mask``) by its keys."""
    if isinstance(sample, dict):
        return {k: v.cpu() for k, v in sample.items()}
    return {"input": sample.cpu()}


def first_rows(sample: Any, n: int) -> Any:
    if isinstance(sample, dict):
        return {k: v[:n] for k, v in sample.items()}
    return sample[:n]


def export_onnx(module: L.LightningModule, sample: Any, path: Path) -> dict[str, Any]:
    """The module (its ``export_module()`` if it has one: LoRA merged) to ONNX, checked
    against torch with onnxruntime; the reason if it fails. A dict input (``input_ids``,
    ``attention_mask``) becomes one graph input per key, batch and sequence dynamic."""
    target = module.export_module() if hasattr(module, "export_module") else module
    feed = onnx_feed(sample)
    axes = {k: {0: "batch", 1: "sequence"} if v.ndim == 2 and k != "input" else {0: "batch"}
            for k, v in feed.items()}  # fmt: skip
    try:
        torch.onnx.export(
            target, tuple(feed.values()), str(path), input_names=list(feed),
            output_names=["output"], dynamic_axes={**axes, "output": {0: "batch"}}, dynamo=False,
        )  # fmt: skip
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {k: v.numpy() for k, v in feed.items()})[0]
        with torch.no_grad():
            want = target(*feed.values()).float().cpu().numpy()
        diff = float(np.abs(got - want).max())
        scale = float(np.abs(want).max()) or 1.0
        passed = diff <= 1e-4 * max(1.0, scale)
        return {"exported": True, "passed": passed, "max_abs_diff": diff, "session": session}
    except Exception as exc:  # many modules do not trace: say why, keep the checkpoint
        path.unlink(missing_ok=True)
        return {"exported": False, "passed": False, "reason": f"{type(exc).__name__}: {exc}"}


def export_lightning_best(
    run_dir: str | Path, plan: FoldPlan | None = None, sweep_wall_s: float | None = None
):
    """Refit the best configuration, export it to ``run_dir/best`` and write its report."""
    from hpo.export.pipeline import ExportResult, _read_best
    from hpo.train.lightning_plan import plan_lightning

    started = time.perf_counter()
    quiet_lightning()
    run_dir = Path(run_dir).resolve()
    cfg = load_run_config(run_dir)
    best, frame = _read_best(run_dir)
    best_cfg = best_trial_config(cfg, best["params"])
    if plan is None:
        plan = plan_lightning(cfg, build_search_space(cfg.search_space)[0])
    plain = OmegaConf.to_container(best_cfg, resolve=True)
    datamodule = build_datamodule(plain["data"])
    data = module_data(datamodule)
    epochs, how = refit_epochs(best.get("fold_best_epochs"), int(best["epoch"]), str(cfg.metric))
    staging = begin_staging(run_dir)  # renamed to RUN_DIR/best when complete

    seed = int(cfg.seed)
    L.seed_everything(seed, workers=True, verbose=False)
    module = build_lightning_module(plain["model"])
    gpu = float(cfg.resources.gpus_per_trial) > 0 and torch.cuda.is_available()
    tcfg = {**plain["trainer"], "max_epochs": epochs}
    kwargs = trainer_kwargs(tcfg, str(staging / "lightning"), "gpu" if gpu else "cpu", 1)
    kwargs.update(enable_checkpointing=False)
    trainer, fit_s = fit_on_rest_rows(module, kwargs, plain, data, plan, seed)
    refit_train = scalar_metrics(dict(trainer.callback_metrics))

    ckpt = staging / CHECKPOINT_FILE
    trainer.save_checkpoint(str(ckpt), weights_only=True)
    state = torch.load(ckpt, weights_only=True, map_location="cpu")
    checkpoint_check = {"weights_only_load": True, "tensors": len(state["state_dict"])}

    test = heldout_loader(data, plan)
    module = module.cpu().eval()
    outputs, labels = module_outputs(module, test)
    metrics = test_metrics(plan, outputs, labels)
    lightning_test = {}
    if type(module).test_step is not L.LightningModule.test_step:
        tester = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                           enable_model_summary=False)  # fmt: skip
        lightning_test = {
            k: float(v) for k, v in tester.test(module, test, verbose=False)[0].items()
        }
    names = class_names(datamodule, plan)
    predictions = _prediction_table(plan, outputs, labels)
    scratch = None
    weights_key = pretrained_weights_key(plain["model"])
    if weights_key is not None and baselines_enabled(cfg):
        scratch = from_scratch_baseline(plain, kwargs, seed, data, plan, weights_key)
    examples = test_examples(data, plan)
    if examples is not None and len(examples) == len(predictions):
        predictions.insert(0, "example", examples)
    texts = getattr(data.eval_dataset, "texts", None)  # data=text: snippets for the report
    if examples is None and texts is not None and plan.test_rows is not None:
        predictions.insert(0, "example", [texts[i] for i in plan.test_rows])
    predictions.to_parquet(staging / TEST_PREDICTIONS_FILE, index=False)

    sample, _ = split_batch(next(iter(test)))
    onnx = (
        export_onnx(module, first_rows(sample, 2), staging / ONNX_FILE)
        if _tensors(sample)
        else {
            "exported": False,
            "passed": False,
            "reason": "the batches' inputs are not one tensor",
        }
    )
    inference = _inference(module, sample, onnx.pop("session", None))

    manifest = {
        "format": MODEL_FORMAT,
        "engine": "lightning",
        "task": plan.task,
        "classes": plan.classes,
        "model_target": plain["model"]["_target_"],
        "data_target": plain["data"]["_target_"],
        "checkpoint": CHECKPOINT_FILE,
        "onnx": ONNX_FILE if onnx["exported"] else None,
        "class_names": names,
        "preprocessing": _preprocessing(datamodule),
        "trial_id": best["trial_id"],
        "created_by": f"hpo {hpo.__version__}",
    }
    if hasattr(module, "export_files"):  # files predict needs beside the weights (tokenizer)
        manifest["predict"] = module.export_files(staging)
    (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    OmegaConf.save(best_cfg, staging / CONFIG_FILE, resolve=True)
    shutil.rmtree(staging / "lightning", ignore_errors=True)
    record = {
        "refit": {
            "epochs": epochs,
            "how": how,
            "fit_s": fit_s,
            "train_metrics": refit_train,
            "rows": int(len(plan.rest_rows)),
        },  # fmt: skip
        "test": metrics,
        "from_scratch": scratch,
        "lightning_test": lightning_test,
        "test_rows": int(len(predictions)),
        "checkpoint_check": checkpoint_check,
        "onnx": onnx,
        "inference": inference,
        "sweep_wall_s": sweep_wall_s,
        "export_seconds": time.perf_counter() - started,
        "artifacts": {p.name: p.stat().st_size for p in staging.iterdir() if p.is_file()},
    }
    (staging / EXPORT_FILE).write_text(json.dumps(record, indent=1, default=_plain) + "\n")
    report, html_path = write_lightning_report(run_dir, staged=staging)
    best_dir = publish(staging)
    html_path = best_dir / html_path.relative_to(staging)
    return ExportResult(best_dir, report, html_path, record["export_seconds"])


def fit_on_rest_rows(
    module: Any, kwargs: dict, plain: dict, data: Any, plan: FoldPlan, seed: int
) -> tuple[Any, float]:
    """Fit ``module`` on every non-test row with the user's callbacks; returns the
    Trainer and the fit's seconds. No rows are left to validate on: it validates on its
    own training rows (with evaluation transforms), so that schedulers and callbacks that
    monitor a validation metric (ReduceLROnPlateau on val_loss) run as in the folds.
    Never on the test rows."""
    callbacks = instantiate_specs(plain["trainer"].get("callbacks") or [], "callbacks")
    trainer = L.Trainer(**kwargs, callbacks=callbacks)
    train = rows_loader(data.dataset, plan.rest_rows, data.train_loader, True, seed)
    own_rows = rows_loader(data.eval_dataset, plan.rest_rows, data.eval_loader, False)
    started = time.perf_counter()
    trainer.fit(module, train_dataloaders=train, val_dataloaders=own_rows)
    return trainer, time.perf_counter() - started


def pretrained_weights_key(model: dict) -> str | None:
    """The model key that switches a fine-tuning module's pretrained weights on, when they
    are on: ``pretrained`` (model=finetune_image, a bool) or ``pretrained_weights``
    (model=finetune_text, where ``pretrained`` is the folder)."""
    for key in ("pretrained", "pretrained_weights"):
        if model.get(key) is True:
            return key
    return None


def from_scratch_baseline(
    plain: dict, kwargs: dict, seed: int, data: Any, plan: FoldPlan, key: str = "pretrained"
) -> dict[str, Any]:
    """A fine-tuning module's honest baseline: the same configuration with ``key`` false
    (same architecture, random weights), refit on the same rows for the same epochs and
    scored on the same test rows. Shows what the pretrained weights buy
    (``export.baselines=false`` skips it)."""
    L.seed_everything(seed, workers=True, verbose=False)
    module = build_lightning_module({**plain["model"], key: False})
    _, fit_s = fit_on_rest_rows(module, kwargs, plain, data, plan, seed)
    outputs, labels = module_outputs(module.cpu().eval(), heldout_loader(data, plan))
    return {"test": test_metrics(plan, outputs, labels), "fit_s": fit_s}


def class_names(datamodule: Any, plan: FoldPlan) -> list[str] | None:
    """The names of the labels 0..n-1 from the DataModule's optional ``hpo_class_names()``
    (hpo.data.images: the class folders); `hpo predict` and the report print them."""
    hook = getattr(datamodule, "hpo_class_names", None)
    names = hook() if callable(hook) else None
    if not isinstance(names, (list, tuple)) or plan.classes != list(range(len(names))):
        return None
    return [str(n) for n in names]


def test_examples(data: Any, plan: FoldPlan) -> list[str] | None:
    """What each test row is (a file path, a text), from the dataset's ``examples``
    attribute (hpo.data.images): the report shows misclassified ones."""
    if plan.test_rows is None:
        dataset = getattr(data.test_loader, "dataset", None)
        return list(getattr(dataset, "examples", None) or []) or None
    examples = getattr(data.eval_dataset, "examples", None)
    return None if examples is None else [str(examples[i]) for i in plan.test_rows]


def _preprocessing(datamodule: Any) -> dict[str, Any] | None:
    """The input steps the exported model expects (``hpo_preprocessing()`` of the
    DataModule, e.g. resize and normalisation), for ONNX users; None without the hook."""
    hook = getattr(datamodule, "hpo_preprocessing", None)
    return hook() if callable(hook) else None


def _prediction_table(plan: FoldPlan, outputs: np.ndarray, labels) -> pd.DataFrame:
    table = {}
    if labels is not None:
        table["target"] = labels.tolist()
        if plan.task == "classification" and outputs.ndim == 2:
            table["target"] = [plan.classes[i] for i in class_positions(labels, plan.classes)]
    if plan.task == "classification" and outputs.ndim == 2:
        proba = as_probabilities(outputs)
        table["prediction"] = [plan.classes[i] for i in proba.argmax(axis=1)]
        for i, c in enumerate(plan.classes):
            table[f"proba_{c}"] = proba[:, i]
    else:
        table["prediction"] = outputs.reshape(len(outputs), -1)[:, 0]
    return pd.DataFrame(table)


def _inference(module: L.LightningModule, sample: Any, session) -> dict[str, Any]:
    """One-thread latency of one row and of one batch, torch eager and ONNX Runtime."""
    if not _tensors(sample):
        return {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        row, batch = onnx_feed(first_rows(sample, 1)), onnx_feed(sample)
        rows = len(next(iter(batch.values())))
        with torch.no_grad():
            out = {
                "batch_size": rows,
                "torch_row": _timed(lambda: module(*row.values())),
                "torch_batch": _timed(lambda: module(*batch.values())),
            }
        if session is not None:
            row_np = {k: v.numpy() for k, v in row.items()}
            batch_np = {k: v.numpy() for k, v in batch.items()}
            out["onnx_row"] = _timed(lambda: session.run(None, row_np))
            out["onnx_batch"] = _timed(lambda: session.run(None, batch_np))
        out["rows_per_s_torch"] = rows / (out["torch_batch"]["p50_ms"] / 1000)
        return out
    finally:
        torch.set_num_threads(threads)


def _tensors(sample: Any) -> bool:
    """One tensor, or a dict of tensors (what ONNX export and the timing take)."""
    if isinstance(sample, dict):
        return bool(sample) and all(isinstance(v, torch.Tensor) for v in sample.values())
    return isinstance(sample, torch.Tensor)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)
