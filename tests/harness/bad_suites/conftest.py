"""The malformed suites here are data for tests/test_bad_suites.py, not suites to run:
keep relubench's pytest plugin from collecting them."""

collect_ignore_glob = ["*.toml"]
