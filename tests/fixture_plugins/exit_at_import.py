"""Test plugin: calls sys.exit at import (relubench must name it, not exit with 4)."""

import sys

sys.exit(4)
