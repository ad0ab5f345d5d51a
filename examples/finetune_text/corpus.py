"""The two real text sets of the fine-tuning example, both shipped with CPython itself.

* **Pretraining corpus** (no labels): ``pydoc_data.topics``, the text of the Python
  *language reference* that ``help()`` shows (about 465k characters: the grammar, the data
  model, the statements). ``pretraining_texts()`` cuts it into paragraphs.
* **Fine-tuning task** (labelled, small): the first paragraph of the docstrings of standard
  library functions, classes and methods, labelled by the *topic* of the module they come
  from (``TOPICS``: networking, files and archives, numbers, concurrency, text, dates and
  times, testing and debugging). The docstrings are a different text from the language
  reference (library API prose, not grammar), and no module of ``TOPICS`` is read for the
  pretraining corpus. ``docstring_rows()`` reads them from the running interpreter, so the
  rows depend on the Python version (3.11 here); ``write_task_csv`` writes them as a CSV
  with ``text`` and ``topic`` columns for ``data=text``.

The task keeps its real blemishes on purpose (the data quality checks report them): a
class's methods repeat templated docstrings, ``socket`` and ``ssl`` share text, some
docstrings are one word.
"""

from __future__ import annotations

import csv
import importlib
import inspect
import re
from pathlib import Path

TOPICS: dict[str, tuple[str, ...]] = {
    "networking": ("socket", "ssl", "http.client", "ftplib", "smtplib", "imaplib", "poplib",
                   "urllib.parse", "urllib.request", "ipaddress", "http.cookiejar"),
    "files": ("os", "shutil", "pathlib", "tarfile", "zipfile", "gzip", "bz2", "lzma", "glob",
              "fnmatch", "tempfile", "filecmp", "stat", "fileinput", "io"),
    "numbers": ("math", "cmath", "decimal", "fractions", "statistics", "random", "numbers"),
    "concurrency": ("threading", "multiprocessing", "concurrent.futures", "queue", "sched",
                    "asyncio", "selectors", "subprocess"),
    "text": ("re", "string", "textwrap", "difflib", "codecs", "unicodedata", "html",
             "html.parser", "shlex", "csv", "json"),
    "dates": ("datetime", "calendar", "time", "zoneinfo"),
    "testing": ("unittest", "doctest", "pdb", "timeit", "trace", "traceback", "cProfile",
                "pstats", "warnings", "bdb"),
}  # fmt: skip
_SPACE = re.compile(r"\s+")


def _first_paragraph(doc: str) -> str:
    return _SPACE.sub(" ", doc.strip().split("\n\n")[0]).strip()


def _documented(module) -> list[object]:
    """The module's public functions and classes defined in it, and the classes' methods."""
    out = []
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or not (inspect.isclass(obj) or callable(obj)):
            continue
        home = getattr(obj, "__module__", "") or ""
        if not home.lstrip("_").startswith(module.__name__.split(".")[0].lstrip("_")):
            continue  # imported from elsewhere
        out.append(obj)
        if inspect.isclass(obj):
            out.extend(
                v for k, v in sorted(vars(obj).items()) if not k.startswith("_") and callable(v)
            )
    return out


def docstring_rows(topics: dict[str, tuple[str, ...]] = TOPICS) -> list[tuple[str, str]]:
    """``(text, topic)`` for every documented object of the topics' modules (in a fixed
    order); exact repeats are kept (the quality checks find them)."""
    rows = []
    for topic, modules in topics.items():
        for name in modules:
            try:
                module = importlib.import_module(name)
            except ImportError:  # a build without the module (zoneinfo, ssl)
                continue
            for obj in _documented(module):
                doc = obj.__doc__ if isinstance(getattr(obj, "__doc__", None), str) else None
                if doc and doc.strip():
                    rows.append((_first_paragraph(doc), topic))
    return rows


def write_task_csv(path: str | Path, topics: dict[str, tuple[str, ...]] = TOPICS) -> int:
    """Write the docstring-topic task as a CSV (``text``, ``topic``); returns its rows."""
    rows = docstring_rows(topics)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "topic"])
        writer.writerows(rows)
    return len(rows)


def pretraining_texts(min_chars: int = 40) -> list[str]:
    """Paragraphs of the Python language reference (``pydoc_data.topics``)."""
    from pydoc_data.topics import topics

    paragraphs = []
    for key in sorted(topics):
        for block in topics[key].split("\n\n"):
            text = _SPACE.sub(" ", block).strip()
            if len(text) >= min_chars:
                paragraphs.append(text)
    return paragraphs


if __name__ == "__main__":  # python -m examples.finetune_text.corpus OUT.csv
    import sys

    print(f"{write_task_csv(sys.argv[1])} rows written to {sys.argv[1]}")
