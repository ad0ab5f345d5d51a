"""The two real text sets of the fine-tuning example, both shipped with CPython itself.

* **Fine-tuning task** (labelled, small): the first paragraph of the docstrings of standard
  library functions, classes and methods, labelled by the *topic* of the module they come
  from (``TOPICS``: networking, files and archives, numbers, concurrency, text, dates and
  times, testing and debugging). ``docstring_rows()`` reads them from the running
  interpreter, so the rows depend on the Python version (3.11 here); ``write_task_csv``
  writes them as a CSV with ``text`` and ``topic`` columns for ``data=text``.
* **Pretraining corpus** (no labels, same genre): ``pretraining_texts()``, the paragraphs of
  every docstring in the *other* standard-library modules' source files (email, xml,
  logging, argparse, collections, tkinter, idlelib, importlib, ...: read with ``ast``,
  nothing imported), plus ``pydoc_data.topics``, the language reference ``help()`` shows.
  No task module is read for it: ``excluded_module()`` drops every file of a task module's
  top-level package and its private twins (``_pydecimal``, ``_pyio``, ...), the ``test``
  packages, and any paragraph whose normalised text is also a task text (``hpo.data.text``'s
  ``normalise``). Long paragraphs are cut into pieces of ``max_words``.

The task keeps its real blemishes on purpose (the data quality checks report them): a
class's methods repeat templated docstrings, ``socket`` and ``ssl`` share text, some
docstrings are one word.
"""

from __future__ import annotations

import ast
import csv
import functools
import importlib
import inspect
import re
import sysconfig
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
# Private standard-library modules that implement a task module (or a codec for ``codecs``):
# kept out of the pretraining corpus with the task modules' own packages.
HELPERS: dict[str, str] = {"_bootsubprocess": "subprocess", "_compression": "gzip",
                           "_markupbase": "html.parser", "_strptime": "time",
                           "_threading_local": "threading", "encodings": "codecs",
                           "profile": "cProfile", "nturl2path": "urllib.request"}  # fmt: skip
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


def _task_packages(topics: dict[str, tuple[str, ...]]) -> set[str]:
    return {name.split(".")[0] for modules in topics.values() for name in modules}


def excluded_module(module: str, topics: dict[str, tuple[str, ...]] = TOPICS) -> bool:
    """Whether a standard-library module (dotted name) is kept out of the pretraining
    corpus: it belongs to a task module's top-level package (``asyncio.tasks``,
    ``http.server``), is a private twin of one (``_pydecimal``, ``_pyio``) or a helper
    that implements one (``HELPERS``), or is a test package."""
    parts = module.split(".")
    top = parts[0]
    packages = _task_packages(topics)
    twins = {p for t in packages for p in (f"_{t}", f"_py{t}")}
    testing = any(p in ("test", "tests", "idle_test") or p.startswith("test_") for p in parts)
    return top in packages or top in twins or top in HELPERS or testing


def _stdlib_files(topics: dict[str, tuple[str, ...]]) -> list[tuple[str, Path]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        if rel.parts[0] == "site-packages" or "-" in str(rel):
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        module = ".".join(parts)
        if module and not excluded_module(module, topics):
            out.append((module, path))
    return out


@functools.cache
def _docstrings(path: Path) -> tuple[str, ...]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):  # lib2to3's Python 2 fixtures
        return ()
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    nodes = (n for n in ast.walk(tree) if isinstance(n, kinds))
    return tuple(d for n in nodes if (d := ast.get_docstring(n)))


def _pieces(text: str, max_words: int) -> list[str]:
    words = text.split()
    return [" ".join(words[i : i + max_words]) for i in range(0, len(words), max_words)]


def pretraining_texts(
    min_chars: int = 40,
    max_words: int = 40,
    topics: dict[str, tuple[str, ...]] = TOPICS,
    sources: tuple[str, ...] = ("docstrings", "reference"),
) -> list[str]:
    """The unlabelled pretraining corpus (see the module docstring), in a fixed order, each
    text at least ``min_chars`` long and at most ``max_words`` words; none of the task's
    texts (normalised) is in it. ``sources``: ``docstrings`` (the other modules') and/or
    ``reference`` (``pydoc_data.topics``)."""
    from pydoc_data.topics import topics as reference

    from hpo.data.text import normalise

    blocks: list[str] = []
    if "docstrings" in sources:
        for _, path in _stdlib_files(topics):
            for doc in _docstrings(path):
                blocks.extend(doc.split("\n\n"))
    if "reference" in sources:
        for key in sorted(reference):
            blocks.extend(reference[key].split("\n\n"))
    task = {normalise(text) for text, _ in docstring_rows(topics)}
    out, seen = [], set()
    for block in blocks:
        text = _SPACE.sub(" ", block).strip()
        key = normalise(text)
        if len(text) < min_chars or key in task or key in seen:
            continue
        seen.add(key)
        out.extend(p for p in _pieces(text, max_words) if normalise(p) not in task)
    return out


if __name__ == "__main__":  # python -m examples.finetune_text.corpus OUT.csv
    import sys

    print(f"{write_task_csv(sys.argv[1])} rows written to {sys.argv[1]}")
