"""Real datasets (MNIST subset, digits, diabetes, IDX and CSV files) as ``mlp`` problems,
their metrics (test accuracy, test error, SVM probe) and the Glorot initializer."""

from __future__ import annotations

from harness import hookimpl


@hookimpl
def relubench_problems():
    from plugins.datasets.problems import PROBLEMS

    return PROBLEMS


@hookimpl
def relubench_initializers():
    from plugins.common.mlp import Glorot

    return [Glorot]


@hookimpl
def relubench_metrics():
    from plugins.datasets.metrics import METRICS

    return METRICS
