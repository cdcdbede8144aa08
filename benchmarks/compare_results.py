"""Compare two result folders of one suite row by row (bit-identity check for speed work).

    python benchmarks/compare_results.py RESULTS_A RESULTS_B

Runs are matched on the cell's parameters and the trial (cell ids hash the component
source, so they change with the code), traces on that plus metric and iteration. Every
column except ids, timings and provenance is compared exactly; for differing floats the
maximum absolute and relative difference is printed. Exit status 1 if anything differs.
"""

from __future__ import annotations

import glob
import sys

import numpy as np
import pandas as pd

IGNORED = {"run_id", "cell_id", "time_s", "time_mode", "created_at", "host", "harness_version"}


def _load(root: str, kind: str) -> pd.DataFrame:
    files = sorted(glob.glob(f"{root}/*/{kind}/*.parquet"))
    if not files:
        raise SystemExit(f"{root}: no {kind} Parquet files")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def _cell_keys(runs: pd.DataFrame) -> pd.Series:
    cols = [c for c in runs.columns if c.split(".")[0] in ("problem", "initializer", "solver")]
    key = runs[cols].apply(lambda c: c.map(repr)).agg("|".join, axis=1)
    return pd.Series(key.values, index=runs["cell_id"]).groupby(level=0).first()


def _compare(kind: str, A: pd.DataFrame, B: pd.DataFrame, keys: list[str]) -> bool:
    A = A.sort_values(keys).reset_index(drop=True)
    B = B.sort_values(keys).reset_index(drop=True)
    if len(A) != len(B) or not A[keys].astype(str).equals(B[keys].astype(str)):
        print(f"{kind}: the rows do not match ({len(A)} vs {len(B)})")
        return False
    same = True
    for c in A.columns:
        if c in IGNORED or c in keys or c not in B.columns:
            continue
        x, y = A[c], B[c]
        if pd.api.types.is_float_dtype(x):
            xv, yv = x.to_numpy(), y.to_numpy()
            eq = (xv == yv) | (np.isnan(xv) & np.isnan(yv))
            if eq.all():
                continue
            same = False
            d = np.abs(xv - yv)[~eq]
            rel = d / np.maximum(np.abs(xv[~eq]), 1e-300)
            by = A.loc[~eq, "metric"].unique().tolist() if "metric" in A else []
            print(
                f"{kind}.{c}: {int((~eq).sum())}/{len(eq)} differ, max abs {np.max(d):.3g}, "
                f"max rel {np.max(rel):.3g} {by}"
            )
        elif not x.astype(str).equals(y.astype(str)):
            same = False
            print(f"{kind}.{c}: {int((x.astype(str) != y.astype(str)).sum())} values differ")
    print(f"{kind}: {len(A)} rows, {'IDENTICAL' if same else 'DIFFERENT'} (ignored: ids, times)")
    return same


def main(a: str, b: str) -> int:
    ok = True
    runs = {}
    for name, root in (("a", a), ("b", b)):
        r = _load(root, "runs")
        r["cell"] = r["cell_id"].map(_cell_keys(r))
        runs[name] = r
    ok &= _compare("runs", runs["a"], runs["b"], ["cell", "trial"])
    have = [bool(glob.glob(f"{root}/*/traces/*.parquet")) for root in (a, b)]
    if any(have):
        tr = {}
        for name, root in (("a", a), ("b", b)):
            t = _load(root, "traces")
            t["cell"] = t["cell_id"].map(_cell_keys(runs[name]))
            tr[name] = t
        ok &= _compare("traces", tr["a"], tr["b"], ["cell", "trial", "metric", "iteration"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
