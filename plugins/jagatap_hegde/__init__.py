"""Jagatap & Hegde: alternating minimization for shallow ReLU networks."""

from harness import hookimpl
from plugins.jagatap_hegde.altmin import AltMin


@hookimpl
def relubench_solvers():
    return [AltMin]
