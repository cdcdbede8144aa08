"""Zhang, Yu, Wang & Gu: tensor initialization for one-hidden ReLU nets. Their solver, plain
gradient descent (``gd``), is the shared baseline of every paper and lives in ``plugins.common``."""

from harness import hookimpl
from plugins.zhang_gd.tensor_init import TensorInit


@hookimpl
def relubench_initializers():
    return [TensorInit]
