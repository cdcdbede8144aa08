"""What the ``relubench`` command prints off a terminal (a log, a pipe, CI), on Ctrl-C,
and in ``relubench list``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import load_results
from harness.cli import first_sentence, main
from harness.plugins import get_registry

WIDE = """
[suite]
name = "wide-table"
trials = 1
seed = 3

[[problems]]
name = "one_hidden"
d = [6, 8]
k = 2
n = [30, 60]
kappa = [1.0, 2.0]

[[initializers]]
name = "gaussian"
scale = [0.25, 0.5]

[[solvers]]
name = "probe"
tag = [1, 2]

[metrics]
names = ["param_error", "success"]
"""

SLOW = """
[suite]
name = "slow-test"
trials = 1
seed = 0

[[problems]]
name = "one_hidden"
d = 4
k = 2
n = 20

[[initializers]]
name = "gaussian"

[[solvers]]
name = "slow"
delay = 0.4
tag = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]

[metrics]
names = ["param_error"]
"""

RELUBENCH = [sys.executable, "-m", "harness.cli"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _default_sigint() -> None:
    # A shell starts background jobs with SIGINT ignored, and children inherit that:
    # restore the default so the command gets Ctrl-C as it does at a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_summary_piped_to_a_file_keeps_every_row_on_one_line(write_suite, probe_plugin, tmp_path):
    suite = write_suite(WIDE)
    cmd = [*RELUBENCH, "run", str(suite), "--plugin", str(probe_plugin)]
    cmd += ["--results", str(tmp_path / "r"), "--executor", "serial", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if "solver" in line and "trials" in line)
    for column in ("solver", "problem", "d", "n", "kappa", "scale", "tag", "trials", "ok"):
        assert re.search(rf"\b{column}\b", header), (column, header)
    assert "median param_error" in header and "median time_s" in header  # not wrapped
    rows = [line.split() for line in lines if line.lstrip().startswith("probe")]
    # one line per cell, every field on it: solver | problem | d | n | kappa | scale | tag | ...
    assert len(rows) == 32
    grid = {(r[4], r[6], r[8], r[10], r[12]) for r in rows}  # scale, d, kappa, n, tag
    assert len(grid) == 32
    assert all(len(r) == len(rows[0]) for r in rows)
    folder = tmp_path / "r" / "wide-table"
    assert lines[-1] == f"figures: relubench report {folder}"


def _descriptions(text: str) -> dict[str, str]:
    """name -> description of a ``relubench list`` table, wrapped lines joined."""
    out: dict[str, str] = {}
    name = None
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) != 4:
            continue
        if cells[0]:
            name = cells[0]
            out[name] = cells[3]
        elif name is not None:
            out[name] = f"{out[name]} {cells[3]}".strip()
    return out


def test_list_shows_whole_first_sentences_wrapped(capsys):
    assert main(["list", "problems"]) == 0
    text = capsys.readouterr().out
    found = _descriptions(text)
    problems = get_registry((), ()).components["problem"]
    assert set(found) == set(problems)
    for name, cls in problems.items():
        assert found[name] == first_sentence(cls), name
        assert found[name].endswith((".", ".)")), (name, found[name])
    # a sentence that cites "Sinha et al. Table 3" is not cut at "al."
    assert found["diabetes"].endswith("(targets min-max scaled to [0, 1]).")
    assert max(len(line) for line in text.splitlines()) < 140  # wrapped, not one long line


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ("One line.", "One line."),
        ("Spans\ntwo lines. Second sentence.", "Spans two lines."),
        ("Cites Sinha et al. Table 3 (a. b). Then more.", "Cites Sinha et al. Table 3 (a. b)."),
        ("Alg. 1 of Jagatap & Hegde, e.g. Fig. 2.\n\nSecond paragraph.", None),
        ("No period at all", "No period at all"),
    ],
)
def test_first_sentence(doc, expected):
    cls = type("C", (), {"__doc__": doc})
    want = expected or "Alg. 1 of Jagatap & Hegde, e.g. Fig. 2."
    assert first_sentence(cls) == want


def test_ctrl_c_stops_cleanly_says_what_was_kept_and_resumes(write_suite, tmp_path):
    plugin = Path(__file__).resolve().parents[1] / "fixture_plugins" / "slow.py"
    suite = write_suite(SLOW)
    args = ["run", str(suite), "--plugin", str(plugin), "--results", str(tmp_path / "r")]
    args += ["--workers", "1"]
    runs = tmp_path / "r" / "slow-test" / "runs"
    proc = subprocess.Popen(
        [*RELUBENCH, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        start_new_session=True,  # its own process group, as a terminal's foreground job
        preexec_fn=_default_sigint,
    )
    try:
        deadline = time.monotonic() + 240
        while len(list(runs.glob("part-*.parquet"))) < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no rows stored"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group gets it
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err + out
    kept = len(load_results(runs.parent))
    assert 2 <= kept < 12
    match = re.search(r"kept the (\d+) trials this run finished \(of 12 to run\)", err)
    assert match and int(match.group(1)) == kept, err
    assert f"{kept} of 12 trials of the suite are stored ok in {runs.parent}" in err
    resume = err.strip().splitlines()[-1].strip()
    assert resume.startswith("relubench run ") and resume.split()[1:] == args
    again = subprocess.run(
        [*RELUBENCH, *args, "--no-progress"], capture_output=True, text=True, env=_env()
    )
    assert again.returncode == 0, again.stderr
    assert f"ran {12 - kept} trials" in again.stdout
    assert f"({kept} already stored)" in again.stdout
    assert len(load_results(runs.parent)) == 12
