"""Which profile wrote which rows of a results folder, and the rows of one profile.

A smoke run and a full run of a suite may share a results folder: their cells
differ (a smoke grid) or their trial counts do (4 trials against 20), and a
table or fit over both mixes scales. Every part file records the ``profile``
and ``trials`` of its run in its metadata (:meth:`harness.run.RunSession.metadata`);
a row belongs to the profile of the run that wrote it (matched by ``run_id``).
:func:`profile_rows` keeps the cells one profile ran, each with the trials that
profile asks for (rows an earlier run of another profile stored for those
trials are the same computation, so they are kept), and says what it left out.
A run that found every trial already stored writes no part file, so its profile
owns no rows of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import InputError, did_you_mean
from harness.store import dedupe_positions, dedupe_runs, load_results, part_files, read_metadata

DEFAULT = "default"
"""The label of rows of a run given no ``--profile``."""
ALL = "all"
"""``--profile all``: every stored row, whatever wrote it (scales mixed on purpose)."""


def label(profile: str | None) -> str:
    """How a profile is named to the user: ``default`` for none."""
    return profile if profile else DEFAULT


def run_profiles(folder: str | Path) -> dict[str, tuple[str, int | None]]:
    """``run_id`` -> (profile label, trials) of every run whose part files are stored."""
    runs_dir = Path(folder) / "runs"
    out: dict[str, tuple[str, int | None]] = {}
    for f in part_files(runs_dir):
        meta = read_metadata(f)
        run_id = meta.get("run_id")
        if run_id is None or run_id in out:
            continue
        trials = meta.get("trials")
        out[run_id] = (label(meta.get("profile")), trials if isinstance(trials, int) else None)
    return out


def tagged_rows(folder: str | Path) -> pd.DataFrame:
    """Every stored row (duplicates kept) with a ``profile`` column: the writer's profile."""
    return with_profiles(folder, load_results(folder, dedupe=False))


def with_profiles(folder: str | Path, runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` (stored rows of ``folder``, or only their ``run_id`` and the columns
    :func:`choose_profile` reads) with a ``profile`` column: the writer's profile."""
    profiles = run_profiles(folder)
    if runs.empty:
        return runs.assign(profile=pd.Series(dtype="object"))
    return runs.assign(profile=runs["run_id"].map(lambda r: profiles.get(r, (DEFAULT, None))[0]))


def latest(tagged: pd.DataFrame) -> str:
    """The profile of the most recently written row."""
    # created_at as a time whether stored as ISO text or as a timestamp
    when = tagged["created_at"]
    if not isinstance(when.dtype, pd.DatetimeTZDtype):
        when = pd.to_datetime(when.astype(str), errors="coerce", utc=True, format="mixed")
    order = tagged.assign(_when=when).sort_values(["_when", "run_id"], kind="mergesort")
    return str(order["profile"].iloc[-1])


@dataclass
class ProfileRows:
    """The rows of one profile, and what was left out (for the message that says so)."""

    runs: pd.DataFrame
    profile: str
    """The profile's label (``default`` for runs without ``--profile``, or ``all``)."""
    chosen: bool
    """Whether the caller named the profile (else it is the most recent one)."""
    left_out: dict[str, int] = field(default_factory=dict)
    """Profile label -> rows stored by that profile and not used."""

    def describe(self) -> str:
        """One line: which rows these are, and which were left out."""
        cells = self.runs["cell_id"].nunique() if not self.runs.empty else 0
        if self.profile == ALL:
            return f"rows: all {len(self.runs)} stored rows ({cells} cells), every profile mixed"
        how = "" if self.chosen else "the most recent "
        text = f"rows: {how}profile {self.profile}, {cells} cells, {len(self.runs)} rows"
        if self.left_out:
            others = ", ".join(f"{p} ({n} rows)" for p, n in sorted(self.left_out.items()))
            text += f"; left out: {others} (choose with --profile NAME, or --profile all)"
        return text


def profile_rows(folder: str | Path, profile: str | None = None) -> ProfileRows:
    """The deduplicated rows of ``profile`` (default: the most recent one) in a suite's
    results folder. ``profile`` ``all`` keeps every row. :class:`InputError` for a
    profile that wrote no row, naming the closest that did."""
    tagged = tagged_rows(folder)
    if tagged.empty:
        return ProfileRows(dedupe_runs(tagged), label(profile), profile is not None)
    positions, wanted, chosen, left_out = choose_profile(folder, tagged, profile)
    runs = tagged.iloc[positions].drop(columns="profile").reset_index(drop=True)
    return ProfileRows(runs, wanted, chosen, left_out)


def choose_profile(
    folder: str | Path, tagged: pd.DataFrame, profile: str | None = None
) -> tuple[np.ndarray, str, bool, dict[str, int]]:
    """What :func:`profile_rows` keeps, from a narrow index: the positions in ``tagged``
    (:func:`with_profiles` of the :data:`~harness.store.DEDUPE_COLUMNS` suffices) of the
    deduplicated rows of ``profile``, in :func:`~harness.store.dedupe_runs` order; the
    profile's label; whether the caller named it; rows left out per other profile. A
    reader of millions of rows takes those positions from an Arrow table."""
    if tagged.empty:
        return np.arange(0), label(profile), profile is not None, {}
    present = sorted(tagged["profile"].unique())
    if profile == ALL:
        return dedupe_positions(tagged), ALL, True, {}
    chosen = profile is not None
    wanted = profile if chosen else latest(tagged)
    if wanted not in present:
        raise InputError(
            f"--profile {wanted}: no row of {folder} was written under this profile"
            f"{did_you_mean(wanted, present)}; profiles here: {', '.join(present)}, or all"
        )
    trials = _lookup(tagged["cell_id"], _trials_of(folder, wanted, tagged))
    keep = ~np.isnan(trials) & (tagged["trial"].to_numpy() < np.nan_to_num(trials))
    kept, rest = np.flatnonzero(keep), np.flatnonzero(~keep)
    positions = kept[dedupe_positions(tagged.iloc[kept])]
    other = tagged.iloc[rest[dedupe_positions(tagged.iloc[rest])]]
    other = _not_in(other, tagged.iloc[positions])
    left_out = {str(p): int(n) for p, n in other.groupby("profile").size().items() if n}
    return positions, wanted, chosen, left_out


def _lookup(values: pd.Series, mapping: dict[str, int]) -> np.ndarray:
    """``mapping`` of each value as floats (NaN where absent); a categorical column is
    looked up once per category."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        cats = values.cat.categories
        table = np.array([mapping.get(c, np.nan) for c in cats] + [np.nan], dtype="float64")
        return table[values.cat.codes.to_numpy()]  # code -1 (missing) takes the last
    return values.map(mapping).astype("float64").to_numpy()


def _trials_of(folder: str | Path, profile: str, tagged: pd.DataFrame) -> dict[str, int]:
    """cell_id -> trials asked for, of every cell a run of ``profile`` wrote rows of: the
    ``trials`` its runs recorded (the largest), else the highest trial they wrote + 1."""
    mine = tagged[tagged["profile"] == profile]
    recorded = [t for p, t in run_profiles(folder).values() if p == profile and t is not None]
    highest = mine.groupby("cell_id")["trial"].max() + 1
    if recorded:
        return {c: max(max(recorded), int(h)) for c, h in highest.items()}
    return {c: int(h) for c, h in highest.items()}


def other_profiles(folder: str | Path, used: pd.DataFrame) -> dict[str, int]:
    """Profile label -> stored rows (deduplicated) not among ``used`` (a run's own rows)."""
    tagged = tagged_rows(folder)
    if tagged.empty:
        return {}
    other = _not_in(dedupe_runs(tagged), used)
    return {str(p): int(n) for p, n in other.groupby("profile").size().items()}


def _not_in(rows: pd.DataFrame, used: pd.DataFrame) -> pd.DataFrame:
    """The rows whose (cell_id, trial) is not among ``used``'s."""
    if rows.empty or used.empty:
        return rows
    keys = pd.MultiIndex.from_frame(used[["cell_id", "trial"]])
    return rows[~pd.MultiIndex.from_frame(rows[["cell_id", "trial"]]).isin(keys)]
