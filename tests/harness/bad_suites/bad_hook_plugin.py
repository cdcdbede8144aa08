"""A --plugin file with a hook the harness does not define (for tests/test_bad_suites.py)."""

from harness import hookimpl


@hookimpl
def relubench_solverz():
    return []
