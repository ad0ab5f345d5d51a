"""Pretrain a small BERT on standard-library docstrings, offline, and save it.

A real architecture at a small size (transformers' ``BertConfig``: 2 layers, hidden 128, 2
heads by default), a WordPiece tokenizer trained with the ``tokenizers`` library on the
same text, masked-language-model pretraining (15% of the tokens: 80% [MASK], 10% random,
10% kept) on CPU for ``--minutes``, then ``save_pretrained`` of the encoder and the
tokenizer into ``--out``: the folder ``model.pretrained`` points at. Nothing downloads;
the corpus (corpus.py's ``pretraining_texts``) is the docstrings of the standard-library
modules that are *not* in the fine-tuning task, plus the language reference
(``pydoc_data.topics``), all shipped with CPython.

Run from the repository root::

    python -m examples.finetune_text.pretrain --out runs/pretrained/pybert --minutes 15
    python -m examples.finetune_text.pretrain --out /tmp/pybert --minutes 0.2   # smoke run

``--minutes 0`` saves the random initialisation (the from-scratch baseline's weights are
made by ``model.pretrained_weights=false`` instead, from the same config).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_tokenizer(texts: list[str], vocab_size: int = 4000):
    """A lowercasing WordPiece tokenizer (BERT's pre-tokenizer and [CLS] ... [SEP]
    template) trained on ``texts``, as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import WordPieceTrainer
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIALS))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )  # fmt: skip
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
    )  # fmt: skip


def small_bert(tokenizer, layers: int = 2, hidden: int = 64, heads: int = 2, max_length: int = 128):
    """A BertForMaskedLM of the given size, its vocabulary the tokenizer's."""
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=4 * hidden,
        max_position_embeddings=max_length, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    return BertForMaskedLM(config)


def mask_tokens(ids: torch.Tensor, mask: torch.Tensor, tokenizer, generator) -> tuple:
    """BERT's masking: 15% of the real tokens are predicted (80% [MASK], 10% random, 10% kept)."""
    special = torch.isin(ids, torch.tensor(tokenizer.all_special_ids))
    chosen = (torch.rand(ids.shape, generator=generator) < 0.15) & mask.bool() & ~special
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    inputs = ids.clone()
    roll = torch.rand(ids.shape, generator=generator)
    inputs[chosen & (roll < 0.8)] = tokenizer.mask_token_id
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[swap] = torch.randint(len(tokenizer), ids.shape, generator=generator)[swap]
    return inputs, labels


def pretrain(
    out: str | Path,
    minutes: float = 4.0,
    layers: int = 2,
    hidden: int = 128,
    heads: int = 2,
    vocab_size: int = 4000,
    max_length: int = 64,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    texts: list[str] | None = None,
    max_steps: int | None = None,
) -> dict:
    """Train the tokenizer and the MLM for ``minutes`` (or ``max_steps``), save both to
    ``out`` (``save_pretrained``) and return what was done (also in ``out/pretraining.json``)."""
    from examples.finetune_text.corpus import pretraining_texts

    torch.manual_seed(seed)
    corpus = (
        "given texts"
        if texts is not None
        else ("standard-library docstrings outside the task's modules + pydoc_data.topics")
    )
    texts = texts if texts is not None else pretraining_texts()
    tokenizer = train_tokenizer(texts, vocab_size)
    model = small_bert(tokenizer, layers, hidden, heads, max_length=max(128, max_length))
    encoded = tokenizer(texts, truncation=True, max_length=max_length, padding="max_length",
                        return_tensors="pt")  # fmt: skip
    ids, attention = encoded["input_ids"], encoded["attention_mask"]
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    started, step, losses = time.perf_counter(), 0, []
    budget_s = 60.0 * minutes
    model.train()
    while (max_steps is None and time.perf_counter() - started < budget_s) or (
        max_steps is not None and step < max_steps
    ):
        rows = torch.randint(len(ids), (batch_size,), generator=generator)
        inputs, labels = mask_tokens(ids[rows], attention[rows], tokenizer, generator)
        # The vocabulary projection only at the masked positions (what the loss reads):
        # the same loss as BertForMaskedLM(labels=...), a fraction of its cost.
        states = model.bert(input_ids=inputs, attention_mask=attention[rows])[0]
        picked = labels != -100
        logits = model.cls(states[picked])
        loss = torch.nn.functional.cross_entropy(logits, labels[picked])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        step += 1
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from transformers import BertModel

    encoder = BertModel(model.config)  # the encoder with its pooler, which AutoModel expects
    encoder.load_state_dict(model.bert.state_dict(), strict=False)
    encoder.save_pretrained(out)
    tokenizer.save_pretrained(out)
    record = {
        "corpus": corpus,
        "texts": len(texts),
        "characters": sum(map(len, texts)),
        "max_length": max_length,
        "batch_size": batch_size,
        "architecture": {
            "layers": layers,
            "hidden": hidden,
            "heads": heads,
            "vocab": len(tokenizer),
        },
        "steps": step,
        "seconds": round(time.perf_counter() - started, 1),
        "mlm_loss_first": _mean(losses[:20]),
        "mlm_loss_last": _mean(losses[-20:]),
        "chance_loss": math.log(len(tokenizer)),
    }
    (out / "pretraining.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for save_pretrained")
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--vocab-size", type=int, default=4000)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    record = pretrain(args.out, args.minutes, args.layers, args.hidden, args.heads,
                      args.vocab_size, args.max_length, seed=args.seed)  # fmt: skip
    print(json.dumps(record))
    return record


if __name__ == "__main__":
    main()
