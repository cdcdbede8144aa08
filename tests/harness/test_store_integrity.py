"""Corrupt part files are caught and quarantined, never read as data (issue 14, item 5).

A truncated, zeroed or junk ``part-*.parquet`` used to make resume, ``report`` and
``load_results`` fail with a traceback, and some single-byte flips changed values
silently. Part files now carry Parquet page checksums and a digest of every column and
of the file metadata; a file that fails is moved to ``quarantine/`` with a warning
naming it, and the next run recomputes its trials.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from harness import load_results
from harness.cli import main
from harness.store import CorruptPartError, CorruptPartWarning, _atomic_write, read_part

SUITE = """
[suite]
name = "store"
trials = 3

[[problems]]
name = "single_neuron"
d = [3, 4, 5]
n = 12

[[initializers]]
name = "zero"

[[solvers]]
name = "altmin"
max_iter = 3

[metrics]
names = ["param_error"]
trace = ["train_loss"]
"""

KEY = ["cell_id", "trial"]
VALUES = ["cell_id", "trial", "status", "metric.param_error", "iterations"]


def run(suite: Path, results: Path) -> None:
    args = ["run", str(suite), "--results", str(results), "--executor", "serial"]
    assert main([*args, "--no-progress"]) == 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """A results folder of 3 cells (one part file each) and its table."""
    tmp = tmp_path_factory.mktemp("reference")
    suite = tmp / "store.toml"
    suite.write_text(SUITE)
    run(suite, tmp / "results")
    table = load_results(tmp / "results" / "store")
    return tmp, table.sort_values(KEY).reset_index(drop=True)


def corrupt(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "zeroed":
        path.write_bytes(bytes(len(data)))
    elif how == "junk":
        path.write_bytes(b"this is not a parquet file\n" * 40)
    elif how == "empty":
        path.write_bytes(b"")
    else:
        raise ValueError(how)


@pytest.mark.parametrize("how", ["truncated", "zeroed", "junk", "empty"])
def test_a_corrupt_part_file_is_quarantined_and_its_trials_recomputed(
    how, reference, tmp_path, capsys
):
    source, expected = reference
    results = tmp_path / "results"
    shutil.copytree(source / "results", results)
    folder = results / "store"
    victim = sorted((folder / "runs").glob("part-*.parquet"))[1]
    lost = read_part(victim).to_pandas()[KEY]
    corrupt(victim, how)

    # load_results names the file, moves it (and its traces) away, returns the rest.
    with pytest.warns(CorruptPartWarning, match=victim.name) as caught:
        partial = load_results(folder)
    assert "quarantine" in str(caught[0].message)
    assert len(partial) == len(expected) - len(lost)
    assert (folder / "quarantine" / "runs" / victim.name).is_file()
    assert (folder / "quarantine" / "traces" / victim.name).is_file()
    assert not victim.exists() and not (folder / "traces" / victim.name).exists()

    # report works on what is left; resume recomputes exactly the lost trials.
    assert main(["report", str(folder)]) == 0
    run(source / "store.toml", results)
    out = capsys.readouterr().out
    assert f"ran {len(lost)} trials in 1 units ({len(expected) - len(lost)} already stored)" in out
    final = load_results(folder).sort_values(KEY).reset_index(drop=True)
    pd.testing.assert_frame_equal(final[VALUES], expected[VALUES])


def test_resume_quarantines_before_it_plans(reference, tmp_path, capsys):
    # The resume index (not a full read) is where a corrupt file is met first.
    source, expected = reference
    results = tmp_path / "results"
    shutil.copytree(source / "results", results)
    victim = sorted((results / "store" / "runs").glob("part-*.parquet"))[0]
    corrupt(victim, "zeroed")
    run(source / "store.toml", results)
    captured = capsys.readouterr()
    # One line on stderr names the file and where it went.
    warning = f"relubench: warning: {victim}: corrupt part file moved to {victim.parents[1]}"
    assert warning in captured.err
    assert "ran 3 trials in 1 units (6 already stored)" in captured.out
    assert len(load_results(results / "store")) == len(expected)


def test_a_corrupt_traces_file_does_not_break_the_report(reference, tmp_path, capsys):
    source, _ = reference
    results = tmp_path / "results"
    shutil.copytree(source / "results", results)
    folder = results / "store"
    victim = sorted((folder / "traces").glob("part-*.parquet"))[0]
    corrupt(victim, "junk")
    assert main(["report", str(folder)]) == 0
    assert f"relubench: warning: {victim}: corrupt part file" in capsys.readouterr().err
    assert (folder / "quarantine" / "traces" / victim.name).is_file()


def test_no_single_byte_flip_changes_a_value_silently(reference, tmp_path):
    source, _ = reference
    original = sorted((source / "results" / "store" / "runs").glob("part-*.parquet"))[0]
    data = original.read_bytes()
    expected = read_part(original)
    target = tmp_path / original.name  # a store name: its metadata is required
    # Every 7th byte of the footer (names, types, metadata: what page checksums do not
    # cover) and every 50th byte of the rest (an exhaustive run found no silent flip).
    footer = len(data) - int.from_bytes(data[-8:-4], "little") - 8
    positions = sorted({*range(0, footer, 50), *range(footer, len(data), 7)})
    caught = unchanged = 0
    for i in positions:
        flipped = bytearray(data)
        flipped[i] ^= 0x5A
        target.write_bytes(bytes(flipped))
        try:
            table = read_part(target)
        except CorruptPartError:
            caught += 1
            continue
        assert table.equals(expected), f"a flip of byte {i} changed the data silently"
        assert table.schema.metadata == expected.schema.metadata, i
        unchanged += 1
    assert caught > len(positions) // 2, (caught, unchanged)


def test_a_full_disk_is_an_error_naming_the_part_file(tmp_path):
    # /dev/full answers every write with ENOSPC: the temporary part file points there.
    target = tmp_path / "runs" / "part-x.parquet"
    target.parent.mkdir()
    os.symlink("/dev/full", target.with_name(f".{target.name}.tmp-{os.getpid()}"))
    table = pa.table({"x": list(range(1000))})
    with pytest.raises(OSError) as info:
        _atomic_write(table, target)
    assert info.value.filename == str(target)
    assert "No space left on device" in info.value.strerror
    assert not target.exists()
