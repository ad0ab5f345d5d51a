"""model=finetune_text with data=text, for real: a tiny BERT (transformers' BertConfig,
2 layers) with a WordPiece tokenizer trained in the test on the Python language reference
(pydoc_data, shipped with CPython), a few MLM steps, save_pretrained; then a real Ray
sweep of 2 trials (LoRA on in one) x 2 folds on standard-library docstrings labelled by
module topic, the export (ONNX with input_ids/attention_mask, LoRA merged), the
from-scratch refit, the report and `hpo predict` on a CSV. Bad inputs fail with one line
before Ray. The example's pretraining corpus holds no task module or task text."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from examples.finetune_text.corpus import (
    HELPERS,
    _docstrings,
    _stdlib_files,
    docstring_rows,
    excluded_module,
    pretraining_texts,
)
from examples.finetune_text.corpus import TOPICS as ALL_TOPICS
from examples.finetune_text.pretrain import pretrain
from hpo.cli import main

TOPICS = ("numbers", "dates", "text")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A save_pretrained folder: tiny BERT + its tokenizer, 3 MLM steps on pydoc text."""
    out = tmp_path_factory.mktemp("tiny_bert")
    pretrain(out, texts=pretraining_texts(sources=("reference",))[:150], vocab_size=300, hidden=16, heads=2,
             layers=2, max_length=16, batch_size=8, max_steps=3)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def topics_csv(tmp_path_factory):
    """40 docstrings of each of 3 topics, plus three planted blemishes: an empty text, a
    near-duplicate (case and punctuation) and an exact duplicate."""
    rows = docstring_rows({t: ALL_TOPICS[t] for t in TOPICS})
    frame = pd.DataFrame(rows, columns=["doc", "topic"]).drop_duplicates("doc")
    frame = frame.groupby("topic").head(40).reset_index(drop=True)
    first = frame.iloc[0]
    planted = pd.DataFrame(
        {"doc": ["   ", first["doc"].upper() + "!!", frame.iloc[1]["doc"]],
         "topic": [first["topic"], first["topic"], frame.iloc[1]["topic"]]}
    )  # fmt: skip
    path = tmp_path_factory.mktemp("data") / "topics.csv"
    pd.concat([frame, planted], ignore_index=True).to_csv(path, index=False)
    return path


def test_pretraining_corpus_holds_no_task_module_and_no_task_text():
    """The corpus is the other modules' docstrings: every task module, its package, private
    twin and helpers are out, and no normalised task text is in it."""
    from hpo.data.text import normalise

    for modules in ALL_TOPICS.values():
        for name in modules:
            top = name.split(".")[0]
            assert excluded_module(name) and excluded_module(f"{top}.sub")
            assert excluded_module(f"_{top}") and excluded_module(f"_py{top}")
    assert all(excluded_module(h) for h in HELPERS) and excluded_module("test.test_email")
    assert not any(map(excluded_module, ("email.message", "xml.dom", "logging", "argparse")))
    texts = pretraining_texts()
    assert len(texts) > 10_000
    task = {normalise(t) for t, _ in docstring_rows(ALL_TOPICS)}
    assert not task & set(map(normalise, texts))
    # Other modules' docstrings that repeat a task text (contextlib's "Enters the supplied
    # context manager." is unittest's too) exist, and are what the dedupe drops.
    raw = {normalise(b) for _, path in _stdlib_files(ALL_TOPICS) for d in _docstrings(path)
           for b in d.split("\n\n")}  # fmt: skip
    assert raw & task


def test_quality_checks_find_the_planted_blemishes_and_test_leakage(tiny_bert, topics_csv):
    from hpo.data.text import TextDataModule, normalise

    assert normalise("Return the PATH!!") == normalise("return the path") != normalise("a path")
    kept = TextDataModule(str(topics_csv), text="doc", target="topic", tokenizer=str(tiny_bert))
    kept.setup("fit")
    checks = {c.name: c for c in kept.report.checks}
    assert checks["empty_texts"].count == 1
    assert checks["duplicate_texts"].count == 1 and checks["near_duplicate_texts"].count == 1
    assert len(kept.dataset) == 120 and kept.classes == sorted(TOPICS)
    assert checks["class_imbalance"].columns == {t: 40 for t in TOPICS}
    # With duplicates kept, a copy on the test side of a split is leakage.
    leaky = TextDataModule(str(topics_csv), text="doc", target="topic",
                           tokenizer=str(tiny_bert), duplicates="keep")  # fmt: skip
    leaky.setup("fit")
    assert len(leaky.dataset) == 122
    copies = [i for i, t in enumerate(leaky.dataset.texts) if normalise(t) == normalise(
        leaky.dataset.texts[0])]  # fmt: skip
    report = leaky.quality(np.asarray(copies[1:]))
    leak = next(c for c in report.checks if c.name == "test_leakage")
    assert leak.count == 1 and leak.status == "warning"


@pytest.mark.parametrize(
    ("override", "needle"),
    [("model.pretrained={missing}", "model.pretrained"), ("data.text=review", "data.text")],
)
def test_bad_inputs_fail_with_one_line_before_ray(tiny_bert, topics_csv, tmp_path, capsys,
                                                  override, needle):  # fmt: skip
    args = ["sweep", "model=finetune_text", f"model.pretrained={tiny_bert}", "data=text",
            f"data.path={topics_csv}", "data.text=doc", "data.target=topic",
            f"output_dir={tmp_path / 'runs'}",
            override.format(missing=tmp_path / "no_such_model")]  # fmt: skip
    code = main(args)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("hpo: error: "), lines
    assert needle in lines[0]
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_finetune_text_sweeps_exports_onnx_and_predicts(tiny_bert, topics_csv, tmp_path, capsys):
    """Both trials (LoRA off and on) finish; the export, report and predict follow."""
    run = tmp_path / "run"
    code = main([
        "sweep", "model=finetune_text", f"model.pretrained={tiny_bert}", "data=text",
        f"data.path={topics_csv}", "data.text=doc", "data.target=topic", "data.max_length=16",
        "data.batch_size=32", "model.lora_r=choice(0, 4)", "searcher=grid",
        "search_space.model.unfreeze_epoch=null", "search_space.model.head_dropout=null",
        "search_space.model.weight_decay=null", "search_space.model.backbone_lr_mult=null",
        "search_space.model.lr=null", "model.lr=3e-3", "cv.folds=2", "trainer.max_epochs=1",
        "trainer.patience=5",
        "budget.num_samples=2", "metric=val_acc", "mode=max", "cluster.num_cpus=2",
        f"run_dir={run}",
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    trials = pd.read_parquet(run / "trials.parquet")
    assert sorted(trials.groupby("trial_id")["model.lora_r"].first()) == [0, 4]
    assert (trials["status"] != "failed").all(), trials[["status", "error"]]
    quality = json.loads((run / "data_quality.json").read_text())
    assert {c["name"] for c in quality["checks"]} >= {"near_duplicate_texts", "test_leakage"}

    best = run / "best"
    manifest = json.loads((best / "model.json").read_text())
    assert manifest["classes"] == sorted(TOPICS) and manifest["predict"]["input"] == "text"
    assert (best / "pretrained" / "tokenizer.json").is_file()
    report = json.loads((best / "report.json").read_text())
    assert report["onnx"]["passed"], report["onnx"]
    # The from-scratch baseline (pretrained_weights=false): same config, rows and test rows.
    scratch = report["from_scratch"]["test"]
    assert scratch["rows"] == report["test"]["rows"] and 0.0 <= scratch["accuracy"] <= 1.0
    assert "from scratch (same config, random weights): accuracy" in out
    assert "Fine-tuned vs from scratch" in (best / "report.html").read_text()
    assert set(report["test"]["per_class"]) == set(TOPICS)
    assert np.sum(report["test"]["confusion_matrix"]) == report["test"]["rows"] == 24
    if report["test"]["accuracy"] < 1.0:
        assert report["misclassified"] and report["misclassified"][0]["example"]
    import onnxruntime as ort

    session = ort.InferenceSession(str(best / "model.onnx"))
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]

    new = tmp_path / "new.csv"
    pd.DataFrame({"doc": ["Return the sine of x.", "Return the current time."]}).to_csv(new)
    code = main(["predict", str(best), str(new), "--output", str(tmp_path / "preds.csv")])
    assert code == 0, capsys.readouterr()
    preds = pd.read_csv(tmp_path / "preds.csv")
    assert len(preds) == 2 and set(preds["prediction"]) <= set(TOPICS)
    assert np.allclose(preds[[f"proba_{t}" for t in sorted(TOPICS)]].sum(axis=1), 1, atol=1e-5)
