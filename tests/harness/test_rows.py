"""Row format and provenance: the commit of the installed source tree, the CPU model,
``created_at`` as a timestamp (and old folders with text timestamps still read)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import harness
from harness import load_results
from harness.rows import CREATED_AT_TYPE, cpu_model, git_state, timestamp
from harness.run import execute
from harness.store import part_files, read_metadata

SUITE = """
[suite]
name = "rows-test"
trials = 2
seed = 1

[[problems]]
name = "one_hidden"
d = 4
k = 2
n = 20

[[initializers]]
name = "gaussian"

[[solvers]]
name = "probe"

[metrics]
names = ["param_error"]
"""

SOURCE = Path(harness.__file__).resolve().parent.parent


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def _repo(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    _git(root, "init", "-q")
    (root / "a.py").write_text("x = 1\n")
    _git(root, "add", "a.py")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    return root


def test_git_state_reads_the_given_tree_with_a_dirty_flag(tmp_path):
    root = _repo(tmp_path)
    state = git_state.__wrapped__  # uncached: the tree changes within the test
    assert state(root) == {"git_commit": _git(root, "rev-parse", "HEAD"), "git_dirty": False}
    (root / "untracked.txt").write_text("not part of the source")
    assert state(root)["git_dirty"] is False
    (root / "a.py").write_text("x = 2\n")
    assert state(root)["git_dirty"] is True
    # A folder inside a work tree is not a source tree of its own (an installed copy in a
    # venv under a checkout must not report the checkout's commit).
    (root / "site-packages").mkdir()
    assert state(root / "site-packages")["git_commit"] != _git(root, "rev-parse", "HEAD")


@pytest.mark.skipif(not (SOURCE / ".git").exists(), reason="relubench not run from a checkout")
def test_provenance_records_the_installed_tree_not_the_current_directory(tmp_path):
    code = "import json; from harness.rows import provenance; print(json.dumps(provenance()))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    info = json.loads(out.stdout)
    assert info["git_commit"] == _git(SOURCE, "rev-parse", "HEAD")
    assert isinstance(info["git_dirty"], bool)
    assert info["source_dir"] == str(SOURCE)


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="needs /proc/cpuinfo")
def test_cpu_is_the_model_name_not_the_architecture():
    names = [
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("model name")
    ]
    if not names:
        pytest.skip("this kernel's /proc/cpuinfo names no model")
    assert cpu_model() == names[0]
    assert cpu_model() != platform.machine()


def test_created_at_is_a_utc_timestamp(write_suite, probe_plugin, tmp_path):
    report = execute(
        write_suite(SUITE), plugins=[str(probe_plugin)], results=tmp_path / "r", executor="serial"
    )
    (part,) = part_files(report.results_dir / "runs")
    assert pq.read_schema(part).field("created_at").type == CREATED_AT_TYPE
    meta = read_metadata(part)
    assert meta["cpu"] == cpu_model() and "git_dirty" in meta and meta["machine"]
    runs = load_results(report.results_dir)
    assert isinstance(runs["created_at"].dtype, pd.DatetimeTZDtype)
    age = pd.Timestamp.now(tz="UTC") - runs["created_at"].max()
    assert pd.Timedelta(0) <= age < pd.Timedelta(minutes=10)


def test_old_folders_with_text_created_at_still_read(write_suite, probe_plugin, tmp_path):
    report = execute(
        write_suite(SUITE), plugins=[str(probe_plugin)], results=tmp_path / "r", executor="serial"
    )
    runs_dir = report.results_dir / "runs"
    (part,) = part_files(runs_dir)
    new = pq.read_table(part)
    # The same trials, as a version that stored ISO 8601 text wrote them, one earlier.
    i = new.schema.get_field_index("created_at")
    # Such a version wrote no content digest (harness.store.DIGEST_KEY) and no "checksums".
    meta = {k: v for k, v in new.schema.metadata.items() if k != b"relubench_digest"}
    provenance = json.loads(meta[b"relubench"])
    provenance.pop("checksums", None)
    meta[b"relubench"] = json.dumps(provenance).encode()
    old = new.set_column(
        i, pa.field("created_at", pa.string()), pa.array(["2026-11-23T12:00:00+00:00"] * 2)
    ).replace_schema_metadata(meta)
    pq.write_table(old, runs_dir / "part-old-00000-x.parquet")
    runs = load_results(report.results_dir)
    assert len(runs) == 2
    # dedupe keeps the earliest written row: the old one, its text read as a timestamp
    assert (runs["created_at"] == pd.Timestamp("2026-11-23T12:00:00Z")).all()
    assert len(load_results(report.results_dir, dedupe=False)) == 4


def test_timestamp_accepts_text_and_naive_times():
    assert timestamp("2026-11-23T12:00:00Z") == pd.Timestamp("2026-11-23T12:00:00Z")
    naive = timestamp(pd.Timestamp("2026-11-23T12:00:00").to_pydatetime())
    assert naive.utcoffset().total_seconds() == 0
