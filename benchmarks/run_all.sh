#!/usr/bin/env bash
# Issue 17's benchmark scripts in sequence, each printing its figures, targets and
# verdicts; the whole output also goes to $TMPDIR/relubench-run_all-<UTC time>.log.
# About 8 minutes on the idle 2-core machine (most of it bench_scale.py's 10M rows;
# RELUBENCH_ROWS=1000000 makes that part ~10x shorter). Run from anywhere:
#   bash benchmarks/run_all.sh
# The reproductions (hours) are listed, not run: python benchmarks/reproduce_all.py.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
[ -x .venv/bin/python ] && PY=${PYTHON:-.venv/bin/python}
LOG="${TMPDIR:-/tmp}/relubench-run_all-$(date -u +%Y%m%dT%H%M).log"
status=0
run() {
    echo "### $*" | tee -a "$LOG"
    "$PY" "$@" 2>&1 | tee -a "$LOG"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$LOG"
run benchmarks/bench_fixed_cost.py                        # target 1
run benchmarks/bench_split.py                             # target 2
run benchmarks/bench_j1.py                                # target 3
run benchmarks/reproduce_all.py --dry                     # target 4 (listing only)
run benchmarks/bench_scale.py --rows "${RELUBENCH_ROWS:-10000000}"  # target 6
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$LOG"
echo "log: $LOG"
grep -E "NOT MET| MET$" "$LOG" | sed 's/^ *//'
exit $status
