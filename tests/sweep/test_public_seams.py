"""hpo reaches Ray and Optuna through their public seams only: no private attribute of
theirs is read or written in src/, and no private module or name of theirs imported."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "hpo"
LIBRARIES = ("ray", "optuna")


def _own_private_names(tree: ast.AST) -> set[str]:
    """Private names a module defines itself (its own helpers, attributes on self)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in ("self", "cls") and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
    return {n for n in names if n.startswith("_")}


def private_uses(path: Path) -> list[str]:
    """``module._name`` imports from Ray/Optuna, and ``obj._attr`` reads or writes of
    attributes the module does not define itself (``self._x`` of its own classes and
    dunders are fine)."""
    tree = ast.parse(path.read_text())
    own = _own_private_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARIES:
            parts = node.module.split(".")
            if any(p.startswith("_") for p in parts):
                found.append(f"{path.name}:{node.lineno} from {node.module}")
            found += [
                f"{path.name}:{node.lineno} import {a.name}"
                for a in node.names
                if a.name.startswith("_")
            ]
        elif isinstance(node, ast.Import):
            found += [
                f"{path.name}:{node.lineno} import {a.name}"
                for a in node.names
                if a.name.split(".")[0] in LIBRARIES and "._" in a.name
            ]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and str(node.args[1].value).startswith("_")
            and node.args[1].value not in own
        ):
            found.append(f"{path.name}:{node.lineno} {node.func.id} {node.args[1].value}")
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            dunder = node.attr.startswith("__") and node.attr.endswith("__")
            hydra_key = node.attr == "_target_"  # a config key, not an attribute
            if not dunder and not hydra_key and node.attr not in own:
                found.append(f"{path.name}:{node.lineno} ._{node.attr.lstrip('_')}")
    return found


def test_src_reads_or_writes_no_private_attribute_of_ray_or_optuna():
    offences = [hit for path in sorted(SRC.rglob("*.py")) for hit in private_uses(path)]
    assert offences == []


def test_the_check_catches_what_resume_used_to_do(tmp_path):
    old = tmp_path / "old_resume.py"
    old.write_text(
        "from ray.tune.utils.serialization import _loads_with_cloudpickle\n"
        "from ray.tune.schedulers.async_hyperband import _Bracket\n"
        "def f(tuner, searcher, scheduler):\n"
        "    study = searcher._ot_study\n"
        "    scheduler._brackets[0]._rungs = []\n"
        "    internal = getattr(tuner, '_local_tuner', None)\n"
        "    return internal._tune_config\n"
    )
    hits = private_uses(old)
    for name in ("_loads_with_cloudpickle", "_Bracket", "_ot_study", "_brackets", "_rungs"):
        assert any(name.lstrip("_") in hit for hit in hits), name
    assert any("local_tuner" in hit for hit in hits)
