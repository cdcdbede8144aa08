"""The system refusing is one line naming the path or address, never a traceback
(issue 14, item 9): exit 2 for a path given wrong, 3 for what the system refused.

A read-only folder and a full disk are real: a read-only (or a 16 KiB) tmpfs mounted
for the test where the test may mount one, else a read-only folder by permissions.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from harness.cli import EXIT_SYSTEM, main

SUITE = """
[suite]
name = "cli"
trials = 2

[[problems]]
name = "single_neuron"
d = [3, 4]
n = 10

[[initializers]]
name = "zero"

[[solvers]]
name = "altmin"
max_iter = 2

[metrics]
names = ["param_error"]
"""


def run(tmp_path: Path, capsys, *args: str) -> tuple[int, str]:
    suite = tmp_path / "cli.toml"
    suite.write_text(SUITE)
    code = main(["run", str(suite), "--executor", "serial", "--no-progress", *args])
    return code, capsys.readouterr().err


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """A tmpfs mounted at ``path`` for the block; skips the test where mounting is denied."""
    path.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_a_dangling_runs_link_is_exit_2_naming_it(tmp_path, capsys):
    runs = tmp_path / "results" / "cli" / "runs"
    runs.parent.mkdir(parents=True)
    runs.symlink_to(tmp_path / "gone")
    code, err = run(tmp_path, capsys, "--results", str(tmp_path / "results"))
    assert code == 2
    assert err.strip() == (
        f"relubench: error: {runs}: a dangling symbolic link (to {tmp_path / 'gone'}); "
        "remove it or point it at a folder"
    )


def test_a_read_only_results_folder_is_exit_3_naming_it(tmp_path, capsys):
    if os.geteuid() != 0:  # permissions bind an ordinary user
        results = tmp_path / "results"
        results.mkdir()
        results.chmod(0o555)
        context = contextlib.nullcontext(results)
    else:  # root ignores permissions: a read-only file system
        context = tmpfs(tmp_path / "results", "ro,size=64k")
    with context as results:
        code, err = run(tmp_path, capsys, "--results", str(results))
    assert code == EXIT_SYSTEM == 3
    assert err.startswith(f"relubench: error: {results / 'cli'}")
    assert "Read-only file system" in err or "Permission denied" in err
    assert len(err.strip().splitlines()) == 1


def test_a_full_disk_is_exit_3_naming_the_part_file(tmp_path, capsys):
    with tmpfs(tmp_path / "results", "size=16k") as results:
        code, err = run(tmp_path, capsys, "--results", str(results))
    assert code == EXIT_SYSTEM
    assert err.startswith(f"relubench: error: {results / 'cli' / 'runs'}/part-")
    assert "cannot write a part file" in err and "No space left on device" in err
    assert len(err.strip().splitlines()) == 1


def test_an_unreachable_scheduler_is_exit_3_within_seconds(tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    suite = tmp_path / "cli.toml"
    suite.write_text(SUITE)
    started = time.perf_counter()
    args = ["run", str(suite), "--executor", "dask", "--scheduler", address, "--no-progress"]
    code = main([*args, "--results", str(tmp_path / "r")])
    elapsed = time.perf_counter() - started
    err = capsys.readouterr().err
    assert code == EXIT_SYSTEM
    assert err.startswith(f"relubench: error: --scheduler {address}: no Dask scheduler answered")
    assert len(err.strip().splitlines()) == 1
    assert elapsed < 25, elapsed  # Dask's own default waits 30 s
