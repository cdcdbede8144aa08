"""Every hook relubench calls, in one place.

A plugin is a module (or object) with functions decorated by
``harness.hookimpl`` whose names match these specifications. A plugin may
implement any subset of the hooks, and any subset of a hook's arguments;
an implementation with a name or argument not listed here is rejected when
the plugin is registered.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from harness.components import Initializer, Metric, Problem, Solver
    from harness.expand import Cell
    from harness.suite import Suite

hookspec = pluggy.HookspecMarker("relubench")

# ---------------------------------------------------------------------------
# Components
# ---------------------------------------------------------------------------


@hookspec
def relubench_problems() -> list[type[Problem]]:
    """Return the problem classes (teacher models, datasets) this plugin provides.

    Each class's ``name`` must be unique among all registered problems; two
    plugins registering the same name is an error naming both.

    :return: a list of :class:`harness.Problem` subclasses.
    """


@hookspec
def relubench_initializers() -> list[type[Initializer]]:
    """Return the initializer classes this plugin provides.

    :return: a list of :class:`harness.Initializer` subclasses.
    """


@hookspec
def relubench_solvers() -> list[type[Solver]]:
    """Return the solver classes this plugin provides.

    :return: a list of :class:`harness.Solver` subclasses.
    """


@hookspec
def relubench_metrics() -> list[type[Metric]]:
    """Return the metric classes this plugin provides.

    :return: a list of :class:`harness.Metric` subclasses.
    """


# ---------------------------------------------------------------------------
# Run lifecycle (called in the process that drives the run, never in workers)
# ---------------------------------------------------------------------------


@hookspec
def relubench_run_start(suite: Suite, cells: list[Cell], results_dir: Path) -> None:
    """Called once the suite is expanded, before any cell runs.

    :param suite: the validated suite (profile and ``--set`` overrides applied).
    :param cells: the cells that will run (incompatible ones already dropped;
        cells whose trials are all stored are included with nothing pending). For a
        suite with tuning axes, the tuning cells: the run starts before its tuning
        phase, and the reported cells are chosen after it.
    :param results_dir: the suite's results folder.
    """


@hookspec
def relubench_cell_done(cell: Cell, rows: list[dict[str, Any]]) -> None:
    """Called after each work unit (a cell or a chunk of its trials) is stored.

    :param cell: the cell the unit belongs to.
    :param rows: the ``runs`` rows just written, one dict per trial.
    """


@hookspec
def relubench_run_end(suite: Suite, results_dir: Path, exit_code: int) -> None:
    """Called when the run is over, after expectations are checked.

    :param suite: the suite that ran.
    :param results_dir: the suite's results folder.
    :param exit_code: what ``relubench run`` will exit with (0, 1).
    """
