"""A --plugin file whose import fails (for tests/test_bad_suites.py)."""

import relubench_this_module_does_not_exist  # noqa: F401
