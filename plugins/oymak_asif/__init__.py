"""Oymak & Asif (2018), "Exactly decoding a vector through ReLU activation": the additive
teacher, projected centered gradient descent and the relative recovery error."""

from __future__ import annotations

from harness import hookimpl
from plugins.oymak_asif.centered_pgd import CenteredPGD
from plugins.oymak_asif.metrics import RelErrorSq
from plugins.oymak_asif.problems import Additive


@hookimpl
def relubench_problems():
    return [Additive]


@hookimpl
def relubench_solvers():
    return [CenteredPGD]


@hookimpl
def relubench_metrics():
    return [RelErrorSq]
