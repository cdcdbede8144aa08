"""Test plugin: hooks that raise. ``relubench_cell_done`` raises after the first cell;
``RAISING_HOOKS_SOLVERS=1`` in the environment makes ``relubench_solvers`` raise too."""

import os

from harness import hookimpl


@hookimpl
def relubench_solvers():
    if os.environ.get("RAISING_HOOKS_SOLVERS") == "1":
        raise ValueError("cannot list my solvers today")
    return []


@hookimpl
def relubench_cell_done(cell, rows):
    raise RuntimeError(f"cell_done hook failed on purpose ({len(rows)} rows)")
