"""Test plugin: raises KeyboardInterrupt at import (relubench must name it)."""

raise KeyboardInterrupt
