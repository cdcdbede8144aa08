"""Issue 17, target 4: run every suite's reproduction profile and tabulate the cost.

The profile of each suite is the one docs/reproductions.md reports (its summary table,
column "profile run": the first word, e.g. ``full``, ``medium``, ``large``). For each suite
the script runs ``relubench run suites/<suite>.toml --profile <profile>`` in a fresh
results folder and records trials, wall time, CPU time (the whole process tree), peak
summed RSS and the expectation verdicts (held / failed lines), next to the wall time the
docs recorded where they give one. The table goes to stdout and, as Markdown, to
``--out`` (default benchmarks/reproduce_all.md).

This is hours of work on two cores: use ``--dry`` to list what would run, ``--suites``
and ``--profile`` to run a part.

Usage: python benchmarks/reproduce_all.py [--dry] [--suites jagatap-fig1,oymak-fig2:medium]
       [--profile smoke] [--workers N] [--out FILE] [--results DIR]

A suite written ``name:profile`` runs that profile. With ``--results DIR`` the runs are kept
(``DIR/<suite>``, logs in ``DIR/logs``): a second invocation resumes them, and ``relubench
report DIR/<suite>`` draws their figures. The table is rewritten after every suite (a long
run stopped halfway keeps the rows it finished), each row with the load average at its
start, and ``--out`` also lists every claim line (held / failed, with the measured value).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import ROOT, header, measure  # noqa: E402

DOC = ROOT / "docs" / "reproductions.md"

# Wall times of each suite's reported run in docs/reproductions.md's verdict table (seconds;
# round three, 2026-12-01: one worker, two suites at a time on the idle 2-core machine,
# tuning phases included; benchmarks/RESULTS.md has the whole table).
RECORDED_S = {
    "jagatap-fig1": 44,
    "jagatap-fig2": 1012,
    "jagatap-fig3a": 7,
    "jagatap-fig3b": 1020,
    "jagatap-fig4": 11,
    "zhang-fig2a": 14,
    "zhang-fig2b": 192,
    "zhang-fig2c": 79,
    "zhang-fig2d": 120,
    "liyuan-fig7": 227,
    "liyuan-fig8": 467,
    "liyuan-zero-init": 565,
    "oymak-fig2": 156,
    "oymak-fig3": 11,
    "dante-mlp": 2133,
    "dante-sigmoid": 421,
    "dante-xent": 848,
    "dante-adaptive": 241,
    "dante-T": 131,
    "dante-regression": 22,
    "dante-autoencoder": 229,
    "cross-one-hidden": 167,
    "cross-additive": 28,
}


def doc_profiles() -> dict[str, str]:
    """suite -> the profile docs/reproductions.md's verdict table says was run (its first
    table; the earlier one below it is history)."""
    out = {}
    for row in DOC.read_text().splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        known = (ROOT / "suites" / f"{cells[1]}.toml").is_file() if len(cells) >= 3 else False
        if known and cells[1] not in out:  # the first table (the current verdicts) wins
            word = re.match(r"[A-Za-z0-9_]+", cells[2].lstrip("*"))
            if word:
                out[cells[1]] = word.group(0)
    return out


def run_one(suite: str, profile: str, workers: int | None, results: Path) -> dict[str, object]:
    logs = results / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{suite}.{profile}.log"
    cmd = [sys.executable, "-m", "harness.cli", "run", str(ROOT / "suites" / f"{suite}.toml")]
    cmd += ["--profile", profile, "--results", str(results), "--no-progress"]
    if workers:
        cmd += ["--workers", str(workers)]
    load = os.getloadavg()[0]
    m = measure(cmd, output=log)
    text = log.read_text()
    ran = re.search(r"ran (\d+) trials", text)
    return {
        **m,
        "load": load,
        "trials": int(ran.group(1)) if ran else 0,
        "claims": re.findall(r"^(?:held|failed) .*$", text, re.M),
        "held": len(re.findall(r"^held ", text, re.M)),
        "failed": len(re.findall(r"^failed ", text, re.M)),
        "tail": text.strip().splitlines()[-1] if text.strip() else "",
    }


def write_table(out: Path, rows: list[tuple[str, str, dict[str, object]]]) -> None:
    lines = [
        "| suite | profile | trials | wall s | CPU s | peak GiB | load at start | held "
        "| failed | exit | recorded s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s, p, r in rows:
        lines.append(
            f"| {s} | {p} | {r['trials']} | {r['wall']:.1f} | {r['cpu']:.1f} | "
            f"{r['rss'] / 2**30:.2f} | {r['load']:.1f} | {r['held']} | {r['failed']} | "
            f"{r['rc']} | {RECORDED_S.get(s, '-')} |"
        )
    wall = sum(r["wall"] for _, _, r in rows)
    lines.append(f"\nTotal wall {wall:.0f} s over {len(rows)} suites.\n")
    for s, p, r in rows:
        lines.append(f"\n### {s} ({p})\n\n```")
        lines += [c[:400] for c in r["claims"]] or ["(no claims judged)"]
        lines.append("```")
    out.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dry", action="store_true", help="list suites and profiles; run nothing")
    ap.add_argument("--suites", help="comma-separated suite names (default: every reported one)")
    ap.add_argument("--profile", help="run this profile instead of the reported one (e.g. smoke)")
    ap.add_argument("--workers", type=int)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "reproduce_all.md")
    ap.add_argument("--results", type=Path, help="keep the runs here (default: a temporary folder)")
    args = ap.parse_args()
    profiles = doc_profiles()
    wanted = args.suites.split(",") if args.suites else sorted(profiles)
    named = [w.partition(":") for w in wanted]
    unknown = [s for s, _, _ in named if not (ROOT / "suites" / f"{s}.toml").is_file()]
    if unknown:
        raise SystemExit(f"--suites: no such suite file: {', '.join(unknown)}")
    plan = [(s, p or args.profile or profiles.get(s, "full")) for s, _, p in named]
    if args.dry:
        total = sum(RECORDED_S.get(s, 0) for s, _ in plan)
        for s, p in plan:
            rec = RECORDED_S.get(s)
            print(f"{s:<20} --profile {p:<8} recorded {f'{rec} s' if rec else '-'}")
        top = sorted(plan, key=lambda sp: -RECORDED_S.get(sp[0], 0))[:3]
        print(f"{len(plan)} suites; recorded wall times sum to {total} s")
        print("most expensive (recorded): " + ", ".join(s for s, _ in top))
        return
    header("Target 4: every suite's reproduction profile")
    rows: list[tuple[str, str, dict[str, object]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        results = args.results or Path(tmp)
        for s, p in plan:
            r = run_one(s, p, args.workers, results)
            rows.append((s, p, r))
            print(
                f"   {s:<20} {p:<7} {r['trials']:>6} trials {r['wall']:>8.1f} s wall "
                f"{r['cpu']:>8.1f} s CPU {r['rss'] / 2**30:>5.2f} GiB  load {r['load']:.1f}  "
                f"held {r['held']} failed {r['failed']}  exit {r['rc']}",
                flush=True,
            )
            write_table(args.out, rows)
    print(f"   table: {args.out}")


if __name__ == "__main__":
    main()
