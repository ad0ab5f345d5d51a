"""The text fine-tuning example in one command, from the repository root:

    python -m examples.finetune_text                         # corpus, pretraining (once), sweep
    python -m examples.finetune_text --pretrain-minutes 15   # the README's pretraining budget
    python -m examples.finetune_text budget.num_samples=2    # other words go to `hpo sweep`

It writes the task CSV (``runs/data/docstring_topics.csv``) and pretrains the small BERT
(``runs/pretrained/pybert``) when they are not there yet, then runs ``hpo sweep
--config-dir examples/finetune_text/conf experiment=finetune_text``. The sweep's report puts
a from-scratch refit of the best configuration beside the fine-tuned model, on the same test
docstrings. The label-budget comparison of the README is ``compare.py`` (about 30 minutes).
"""

from __future__ import annotations

import sys
from pathlib import Path

from examples.finetune_text import corpus, pretrain
from hpo.cli import main as hpo_main

CONF = Path(__file__).resolve().parent / "conf"
TASK_CSV = Path("runs/data/docstring_topics.csv")
PRETRAINED = Path("runs/pretrained/pybert")


def main(argv: list[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    minutes = "4"
    if "--pretrain-minutes" in words:
        at = words.index("--pretrain-minutes")
        minutes = words[at + 1]
        del words[at : at + 2]
    if not TASK_CSV.is_file():
        TASK_CSV.parent.mkdir(parents=True, exist_ok=True)
        print(f"{corpus.write_task_csv(TASK_CSV)} rows written to {TASK_CSV}")
    if not (PRETRAINED / "config.json").is_file():
        pretrain.main(["--out", str(PRETRAINED), "--minutes", minutes])
    return hpo_main(["sweep", "--config-dir", str(CONF), "experiment=finetune_text", *words])


if __name__ == "__main__":
    sys.exit(main())
