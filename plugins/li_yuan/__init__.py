"""Li & Yuan (2017), "Convergence analysis of two-layer neural networks with ReLU activation":
the ResLink and 3-Block teachers, minibatch SGD, gradient descent on the closed-form
population loss, and the paper's potential, one-point inner product and distance."""

from __future__ import annotations

from harness import hookimpl
from plugins.li_yuan.initializers import SkewStart
from plugins.li_yuan.metrics import (
    Distance,
    OnePointInner,
    PopulationLoss,
    PotentialG,
    RelativeTestError,
)
from plugins.li_yuan.population_gd import PopulationGD
from plugins.li_yuan.problems import Reslink, ThreeBlock
from plugins.li_yuan.sgd import SGD


@hookimpl
def relubench_problems():
    return [Reslink, ThreeBlock]


@hookimpl
def relubench_initializers():
    return [SkewStart]


@hookimpl
def relubench_solvers():
    return [SGD, PopulationGD]


@hookimpl
def relubench_metrics():
    return [PotentialG, OnePointInner, Distance, PopulationLoss, RelativeTestError]
