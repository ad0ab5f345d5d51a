"""Config nodes that build a user's class by ``_target_`` (a LightningModule on the
Lightning path, a LightningDataModule): their keys are the class's constructor keys.

Which keys of such a node are hpo's own, which the constructor takes, and the up-front
check that each key is one the constructor accepts (a typo fails here, naming the key and
the keys the class takes, instead of inside every trial).
"""

from __future__ import annotations

import inspect
from typing import Any

from hpo.errors import ConfigError, HPOError

BUILTIN_MODEL = "hpo.models.mlp.TabularMLP"
LIGHTNING_SOURCE = "lightning"
# Keys of the `model` / `data` node that hpo reads itself; the rest go to the constructor.
MODEL_OWN_KEYS = ("_target_", "name")
DATA_OWN_KEYS = ("_target_", "name", "source", "task")


def is_lightning_data(data: Any) -> bool:
    """A DataModule source (the Lightning path), as opposed to a table."""
    return bool(data) and data.get("source") == LIGHTNING_SOURCE


def constructor_keys(node: dict[str, Any], own: tuple[str, ...]) -> dict[str, Any]:
    """The keyword arguments a ``_target_`` node passes to its class."""
    return {k: v for k, v in node.items() if k not in own}


def import_target(path: str, key: str) -> type:
    """The class a ``_target_`` names, or a ConfigError naming ``key``."""
    from hydra.utils import get_class

    if not path or path == "???":
        raise ConfigError(
            f"config key `{key}`: set it to your class's import path (mypkg.MyClass)."
        )
    try:
        return get_class(path)
    except Exception as exc:
        cause = exc.__cause__ or exc
        raise ConfigError(
            f"config key `{key}`: cannot import {path!r} ({type(cause).__name__}: {cause}); "
            "the package must be importable here and on every Ray worker (install it, or put "
            "it on PYTHONPATH)."
        ) from exc


def accepted_keys(cls: type) -> tuple[set[str], bool]:
    """The constructor's keyword names, and whether it also takes ``**kwargs``."""
    params = inspect.signature(cls.__init__).parameters.values()
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    names.discard("self")
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def takes_key(path: str | None, key: str) -> bool:
    """Whether the class at ``path`` accepts ``key`` (False when it cannot be imported)."""
    try:
        names, var_kw = accepted_keys(import_target(path or "", "_target_"))
    except ConfigError:
        return False
    return var_kw or key in names


def check_constructor_keys(node: dict[str, Any], own: tuple[str, ...], group: str) -> None:
    """Every non-hpo key of ``node`` must be a keyword of its class's constructor."""
    cls = import_target(node.get("_target_"), f"{group}._target_")
    names, var_kw = accepted_keys(cls)
    if var_kw:
        return
    for key in constructor_keys(node, own):
        if key not in names:
            raise ConfigError(
                f"config key `{group}.{key}`: {cls.__name__}.__init__ takes no `{key}`; its "
                f"keys are {', '.join(sorted(names)) or '(none)'}. Fix the spelling or drop it "
                f"(`~{group}.{key}`)."
            )


def build_target(node: dict[str, Any], own: tuple[str, ...], group: str, base: type) -> Any:
    """Instantiate a ``_target_`` node with its constructor keys; a failure, or an object
    that is not a ``base``, is a ConfigError naming ``group._target_``."""
    from hydra.utils import instantiate

    target = node.get("_target_")
    try:
        built = instantiate({"_target_": target}, **constructor_keys(dict(node), own))
    except HPOError:  # the class's own one-line message (a missing file, a bad key)
        raise
    except Exception as exc:
        if isinstance(exc.__cause__, HPOError):  # hydra wraps what the constructor raised
            raise exc.__cause__ from None
        cause = exc.__cause__ or exc
        if isinstance(cause, HPOError):  # the class's own one-line message names its key
            raise cause from None
        raise ConfigError(
            f"config key `{group}._target_`: cannot build {target!r}: {type(cause).__name__}: "
            f"{cause}. Check the class and its keys in the {group} config."
        ) from exc
    if not isinstance(built, base):
        raise ConfigError(
            f"config key `{group}._target_`: {target} built a {type(built).__name__}, not a "
            f"{base.__module__.split('.')[0]}.{base.__name__}."
        )
    return built
