"""Hydra sweep grammar <-> Optuna distributions. Pure functions, no Ray.

Meanings (those of Hydra's Optuna sweeper, except ``range``'s stop, see below):

==========================================  =========================================
expression                                  distribution
==========================================  =========================================
``choice(a, b, c)``                         ``CategoricalDistribution([a, b, c])``
``range(1, 4)``                             ``IntDistribution(1, 3)`` -- stop EXCLUDED
``range(0, 1, 0.25)``                       ``FloatDistribution(0, 0.75, step=0.25)``
``shuffle(range(...))``                     ``CategoricalDistribution`` of the values
``interval(0, 1)``                          ``FloatDistribution(0, 1)``
``int(interval(1, 8))``                     ``IntDistribution(1, 8)``
``tag(log, interval(1e-4, 1e-1))``          ``FloatDistribution(1e-4, 1e-1, log=True)``
``tag(log, int(interval(8, 256)))``         ``IntDistribution(8, 256, log=True)``
==========================================  =========================================

``range``'s stop is excluded, as in Python, Hydra's grammar and ``hydra --multirun``:
``range(1, 4)`` samples from {1, 2, 3}. Hydra's Optuna sweeper passes the stop to
Optuna's ``IntDistribution`` as an inclusive ``high`` and so also samples 4; we do not
copy that, because the same override would then mean two different sets depending on
the sweeper. ``interval`` bounds are both included.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from hpo.errors import SearchSpaceError

SearchSpace = dict[str, BaseDistribution]

_parser = OverridesParser.create()


def parse_override(text: str) -> Override:
    """Parse one ``key=value`` override in Hydra's grammar, or raise SearchSpaceError."""
    try:
        return _parser.parse_override(text)
    except Exception as exc:  # hydra raises several exception types for bad grammar
        key = text.split("=", 1)[0]
        msg = str(exc).strip().splitlines()[0]
        raise SearchSpaceError(
            f"cannot parse the override for `{key}`: {msg}. Sweep functions are "
            "choice(...), range(start, stop[, step]), interval(low, high), "
            "int(interval(...)) and tag(log, interval(...))."
        ) from exc


def parse_expression(key: str, expression: Any) -> BaseDistribution | Any:
    """Translate the expression for ``key`` into an Optuna distribution.

    A value that is not a sweep (``0.01``, ``relu``) is returned as a plain value.
    """
    if not isinstance(expression, str):
        return expression
    return override_to_distribution(parse_override(f"{key}={expression}"))


def override_to_distribution(override: Override) -> BaseDistribution | Any:
    """The one translation from a parsed Hydra override to an Optuna distribution."""
    key = override.get_key_element()
    if not override.is_sweep_override():
        return override.value()
    value = override.value()
    try:
        if isinstance(value, ChoiceSweep):
            choices = list(override.sweep_iterator(transformer=Transformer.encode))
            choices = [_decode_choice(c) for c in choices]
            if not choices:
                raise SearchSpaceError(f"`{key}`: choice() needs at least one value.")
            bad = [c for c in choices if not isinstance(c, (str, int, float, bool, type(None)))]
            if bad:
                raise SearchSpaceError(
                    f"`{key}`: choice() values must be numbers, strings, booleans or null, "
                    f"got {bad!r}."
                )
            return CategoricalDistribution(choices)
        if isinstance(value, RangeSweep):
            return _range_distribution(key, value, override)
        if isinstance(value, IntervalSweep):
            return _interval_distribution(key, value)
    except SearchSpaceError:
        raise
    except ValueError as exc:  # optuna's own checks
        raise SearchSpaceError(f"`{key}`: {exc}") from exc
    raise SearchSpaceError(
        f"`{key}`: {type(value).__name__} sweeps are not supported; use choice, range or interval."
    )


def _decode_choice(value: Any) -> Any:
    # Transformer.encode turns every choice into its string form: read numbers, booleans and
    # null back so that choice(64, 128) samples ints, as Hydra's Optuna sweeper does.
    if not isinstance(value, str):
        return value
    element = _parser.parse_override(f"x={value}").value()
    return element


def _range_distribution(key: str, value: RangeSweep, override: Override) -> BaseDistribution:
    start, stop, step = value.start, value.stop, value.step
    if step == 0:
        raise SearchSpaceError(f"`{key}`: range() step must not be 0.")
    values = list(_range_values(start, stop, step))
    if not values:
        raise SearchSpaceError(
            f"`{key}`: range({start}, {stop}, {step}) is empty (the stop is excluded); "
            "use a stop beyond the start in the step's direction."
        )
    if value.shuffle:
        return CategoricalDistribution(values)
    low, high = min(values), max(values)
    if all(isinstance(v, int) for v in (start, stop, step)):
        return IntDistribution(int(low), int(high), step=abs(int(step)))
    if len(values) == 1:
        return FloatDistribution(float(low), float(high))
    return FloatDistribution(float(low), float(high), step=abs(float(step)))


def _range_values(start: float, stop: float, step: float) -> Iterable[float]:
    if all(isinstance(v, int) for v in (start, stop, step)):
        return range(start, stop, step)
    count = max(0, math.ceil((stop - start) / step - 1e-9))
    return [round(start + i * step, 12) for i in range(count)]


def _interval_distribution(key: str, value: IntervalSweep) -> BaseDistribution:
    low, high = value.start, value.end
    log = "log" in value.tags
    unknown = set(value.tags) - {"log"}
    if unknown:
        raise SearchSpaceError(f"`{key}`: unknown tag(s) {sorted(unknown)}; only `log` is known.")
    if low > high:
        raise SearchSpaceError(
            f"`{key}`: interval({low}, {high}) is empty: low <= high must hold; swap the bounds."
        )
    if log and low <= 0:
        raise SearchSpaceError(
            f"`{key}`: a log interval needs low > 0, got low={low}; use a positive lower bound."
        )
    if isinstance(low, int) and isinstance(high, int):
        return IntDistribution(low, high, log=log)
    return FloatDistribution(float(low), float(high), log=log)


def distribution_to_expression(dist: BaseDistribution) -> str:
    """The inverse translation: an expression that parses back to ``dist``."""
    if isinstance(dist, CategoricalDistribution):
        return "choice(" + ", ".join(_format_choice(c) for c in dist.choices) + ")"
    if isinstance(dist, IntDistribution):
        if dist.log:
            return f"tag(log, int(interval({dist.low}, {dist.high})))"
        if dist.step == 1:
            return f"range({dist.low}, {dist.high + 1})"
        return f"range({dist.low}, {dist.high + dist.step}, {dist.step})"
    if isinstance(dist, FloatDistribution):
        low, high = _format_float(dist.low), _format_float(dist.high)
        if dist.log:
            return f"tag(log, interval({low}, {high}))"
        if dist.step is not None:
            stop = _format_float(round(dist.high + dist.step / 2, 12))
            return f"range({low}, {stop}, {_format_float(dist.step)})"
        return f"interval({low}, {high})"
    raise SearchSpaceError(f"cannot express {dist!r} in the sweep grammar")


def _format_float(x: float) -> str:
    text = repr(float(x))
    return text


_BARE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def _format_choice(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if _BARE.match(value) and value.lower() not in {"true", "false", "null"}:
            return value
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(value)


def split_overrides(overrides: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """Split command-line overrides into plain ones (for Hydra's compose) and sweep ones.

    Returns:
        ``(plain, sweeps)``: plain overrides as given, and ``{key: expression}`` for every
        override whose value is a sweep (choice/range/interval, with casts and tags).
    """
    plain: list[str] = []
    sweeps: dict[str, str] = {}
    for text in overrides:
        override = parse_override(text)
        if override.is_sweep_override():
            key = override.get_key_element()
            sweeps[key] = text.split("=", 1)[1]
        else:
            plain.append(text)
    return plain, sweeps


def build_search_space(
    node: Mapping[str, Any], sweeps: Mapping[str, str] | None = None
) -> tuple[SearchSpace, dict[str, Any]]:
    """Build the search space from the config's ``search_space`` node and CLI sweeps.

    A CLI sweep for a key adds it, or replaces the node's expression for it.

    Returns:
        ``(space, fixed)``: distributions by dotted key, and plain (non-sweep) values that
        the node or the command line set for a key of the space.
    """
    merged: dict[str, Any] = dict(node or {})
    merged.update(sweeps or {})
    space: SearchSpace = {}
    fixed: dict[str, Any] = {}
    for key, expression in merged.items():
        if expression is None:  # `search_space.key=null` removes a key from the space
            continue
        result = parse_expression(str(key), expression)
        if isinstance(result, BaseDistribution):
            space[str(key)] = result
        else:
            fixed[str(key)] = result
    return space, fixed


def space_to_expressions(space: Mapping[str, BaseDistribution]) -> dict[str, str]:
    """The search space as ``{key: expression}`` (for config.yaml and the report)."""
    return {key: distribution_to_expression(dist) for key, dist in space.items()}


def grid_size(space: Mapping[str, BaseDistribution]) -> int:
    """Number of points in a fully discrete space; raises for a continuous dimension."""
    size = 1
    for key, dist in space.items():
        size *= len(grid_values(key, dist))
    return size


def grid_values(key: str, dist: BaseDistribution) -> list[Any]:
    """The finite set of values of a discrete distribution (for the grid searcher)."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution) and not dist.log:
        return list(range(dist.low, dist.high + 1, dist.step))
    if isinstance(dist, FloatDistribution) and dist.step is not None and not dist.log:
        count = int(round((dist.high - dist.low) / dist.step)) + 1
        return [round(dist.low + i * dist.step, 12) for i in range(count)]
    raise SearchSpaceError(
        f"`{key}`: searcher=grid needs a finite set of values, but the space has "
        f"{distribution_to_expression(dist)}; use choice(...) or range(...) for it."
    )
