"""DANTE (Sinha et al. 2020): alternating minimization with SNGD, its SGD ablation, and the
backpropagation baselines it is compared with."""

from __future__ import annotations

from harness import hookimpl


@hookimpl
def relubench_solvers():
    from plugins.dante.backprop import Backprop
    from plugins.dante.dante import Dante, DanteSGD

    return [Dante, DanteSGD, Backprop]
