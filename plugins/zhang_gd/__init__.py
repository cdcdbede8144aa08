"""Zhang, Yu, Wang & Gu: gradient descent (from tensor initialization) for one-hidden ReLU nets."""

from harness import hookimpl
from plugins.zhang_gd.gd import GD
from plugins.zhang_gd.tensor_init import TensorInit


@hookimpl
def relubench_solvers():
    return [GD]


@hookimpl
def relubench_initializers():
    return [TensorInit]
