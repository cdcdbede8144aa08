"""``--only KEY=VALUE``: run, dry-run or report part of a suite.

A key is a component kind (``solver``, ``problem``, ``initializer``: the
component's name) or a parameter (``problem.d``, ``solver.step_size``). Values
are read as TOML (``problem.d=50``, ``solver.step_size=0.5``); a bare word is a
string. ``--only`` given twice with one key keeps either value; different keys
must all match (``--only solver=altmin --only solver=gd --only problem.d=50``).
The same :class:`Selection` picks cells before a run (:meth:`Selection.cells`)
and rows of a results table (:meth:`Selection.rows`), so ``run --dry-run``,
``run`` and ``report`` agree. A key or value the suite does not have is an
:class:`~harness.errors.InputError` naming the closest valid one.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.errors import InputError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd

    from harness.expand import Cell

KINDS = ("problem", "initializer", "solver")


def canonical(value: Any) -> str:
    """One text per value, whatever its origin: a cell's parameter, a Parquet cell
    (lists stored as JSON text, integers read back as floats) or ``--only`` text."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return canonical(json.loads(text))
            except ValueError:
                return text
        return text
    if isinstance(value, (list, tuple)):
        return "-".join(canonical(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    if hasattr(value, "item"):  # numpy scalar
        return canonical(value.item())
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:g}"
    return str(value)


def _parse_value(raw: str) -> str:
    try:
        return canonical(tomllib.loads(f"v = {raw.strip()}")["v"])
    except tomllib.TOMLDecodeError:
        return canonical(raw)


def _value_of(cell: Cell, key: str) -> str | None:
    """A cell's value for an ``--only`` key (``solver``, ``problem.d``), as canonical text."""
    kind, _, param = key.partition(".")
    spec = getattr(cell, kind)
    if not param:
        return spec.name
    params = spec.param_dict
    return canonical(params[param]) if param in params else None


@dataclass(frozen=True)
class Selection:
    """``--only`` terms: key -> the values it may take (canonical text)."""

    terms: tuple[tuple[str, tuple[str, ...]], ...] = ()
    texts: tuple[str, ...] = ()

    @classmethod
    def parse(cls, texts: Iterable[str]) -> Selection:
        """Read ``KEY=VALUE`` texts; an :class:`InputError` for one without ``=``."""
        terms: dict[str, list[str]] = {}
        texts = tuple(texts)
        for text in texts:
            key, sep, raw = text.partition("=")
            key = key.strip()
            if not sep or not key or not raw.strip():
                raise InputError(
                    f"--only {text!r}: expected KEY=VALUE, e.g. --only solver=altmin or "
                    "--only problem.d=50"
                )
            terms.setdefault(key, []).append(_parse_value(raw))
        return cls(tuple((k, tuple(v)) for k, v in terms.items()), texts)

    def __bool__(self) -> bool:
        return bool(self.terms)

    def describe(self) -> str:
        """``solver=altmin|gd, problem.d=50``."""
        return ", ".join(f"{k}={'|'.join(v)}" for k, v in self.terms)

    # ------------------------------------------------------------------ cells
    def cells(self, cells: Sequence[Cell], *, where: str = "this suite") -> list[Cell]:
        """The cells every term matches; unknown keys or values raise :class:`InputError`."""
        if not self.terms:
            return list(cells)

        keys = set(KINDS) | {
            f"{kind}.{name}"
            for c in cells
            for kind in KINDS
            for name in getattr(c, kind).param_dict
        }
        self._check(keys, lambda key: {_value_of(c, key) for c in cells}, where)
        chosen = self.keep(cells)
        if not chosen:
            raise InputError(
                f"--only {self.describe()}: no cell of {where} matches every term together"
            )
        return chosen

    def keep(self, cells: Sequence[Cell]) -> list[Cell]:
        """The cells every term matches, without checking the terms (possibly none): for a
        phase of a run whose terms :meth:`cells` already checked against every phase."""

        return [c for c in cells if all(_value_of(c, key) in values for key, values in self.terms)]

    # ------------------------------------------------------------------- rows
    def rows(self, runs: pd.DataFrame, *, where: str = "these results") -> pd.DataFrame:
        """The rows of a runs table every term matches (see :meth:`cells`)."""
        if not self.terms:
            return runs
        keys = {c for c in runs.columns if c in KINDS or c.split(".", 1)[0] in KINDS}
        texts = {
            key: runs[key].map(lambda v: None if _missing(v) else canonical(v)) for key in keys
        }
        self._check(keys, lambda key: set(texts[key]), where)
        mask = None
        for key, values in self.terms:
            hit = texts[key].isin(values)
            mask = hit if mask is None else mask & hit
        chosen = runs[mask.to_numpy()] if mask is not None else runs
        if chosen.empty:
            raise InputError(f"--only {self.describe()}: no row of {where} matches every term")
        return chosen.reset_index(drop=True)

    def _check(
        self, keys: set[str], values_of: Callable[[str], set[str | None]], where: str
    ) -> None:
        for key, wanted in self.terms:
            if key not in keys:
                shown = ", ".join(sorted(keys))
                raise InputError(
                    f"--only {key}=...: {where} has no key {key!r}{did_you_mean(key, keys)}; "
                    f"keys: {shown}"
                )
            present = {v for v in values_of(key) if v is not None}
            for value in wanted:
                if value not in present:
                    shown = ", ".join(sorted(present, key=_sort_key)) or "none"
                    raise InputError(
                        f"--only {key}={value}: no cell of {where} has {key} = {value!r}"
                        f"{did_you_mean(value, present)}; values: {shown}"
                    )


def _text(value: Any) -> str | None:
    return None if _missing(value) else canonical(value)


def _missing(value: Any) -> bool:
    if value is None or type(value).__name__ == "NAType":  # None, pandas.NA
        return True
    return isinstance(value, float) and value != value


def _sort_key(text: str) -> tuple[int, float, str]:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)
