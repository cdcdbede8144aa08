"""Example third-party plugin: registers one solver through the ``relubench`` entry point."""

from harness import hookimpl
from relubench_example.heavy_ball import HeavyBall


@hookimpl
def relubench_solvers():
    return [HeavyBall]
