"""pytest plugin: suites collected as tests (built in a later issue)."""
