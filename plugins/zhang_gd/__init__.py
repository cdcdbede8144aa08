"""Zhang, Yu, Wang & Gu: gradient descent (from tensor initialization) for one-hidden ReLU nets."""

from harness import hookimpl
from plugins.zhang_gd.gd import GD


@hookimpl
def relubench_solvers():
    return [GD]
