"""Shared plugin: teacher problems, initializers, metrics and the gradient-descent baseline
(``gd``, Zhang et al. Algorithm 1) that every paper uses.

Shared math (models, Hungarian matching, Gaussian closed forms) lives here once.
"""

from harness import hookimpl
from plugins.common.gd import GD
from plugins.common.initializers import Gaussian, Perturbed, Zero
from plugins.common.metrics import (
    FunctionError,
    ParamError,
    Success,
    TestError,
    TestLoss,
    TrainLoss,
)
from plugins.common.problems import OneHidden, SingleNeuron


@hookimpl
def relubench_problems():
    return [SingleNeuron, OneHidden]


@hookimpl
def relubench_initializers():
    return [Zero, Gaussian, Perturbed]


@hookimpl
def relubench_solvers():
    return [GD]


@hookimpl
def relubench_metrics():
    return [ParamError, Success, TrainLoss, TestLoss, TestError, FunctionError]
