"""The image fine-tuning example in one command, from the repository root:

    python -m examples.finetune_image                    # pretrain (once), then the sweep
    python -m examples.finetune_image budget.num_samples=8   # extra words go to `hpo sweep`

It runs ``pretrain.py`` when ``data/finetune_image/resnet-textures`` is not there yet (a few
minutes on a CPU), then ``hpo sweep --config-dir examples/finetune_image/conf
experiment=finetune_faces``. The sweep's report (``RUN_DIR/best/report.html``) puts a
from-scratch refit of the best configuration beside the fine-tuned model, on the same test
images, so this one command shows what the pretrained weights bought.
"""

from __future__ import annotations

import sys
from pathlib import Path

from examples.finetune_image import pretrain
from hpo.cli import main as hpo_main

CONF = Path(__file__).resolve().parent / "conf"


def main(argv: list[str] | None = None) -> int:
    overrides = list(sys.argv[1:] if argv is None else argv)
    pretrain.main([])
    return hpo_main(["sweep", "--config-dir", str(CONF), "experiment=finetune_faces", *overrides])


if __name__ == "__main__":
    sys.exit(main())
