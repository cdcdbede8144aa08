"""Test plugin: a solver whose Params is a plain class, not a dataclass."""

from harness import Solver, hookimpl


class PlainParams:
    step = 0.1


class Plain(Solver):
    """A solver whose parameters are declared the wrong way."""

    name = "plain"
    Params = PlainParams


@hookimpl
def relubench_solvers():
    return [Plain]
