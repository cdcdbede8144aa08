"""Errors that mean "bad input": the CLI prints them and exits with code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class InputError(Exception):
    """A problem with what the user gave (suite file, argument, component name).

    The message names the file, the key, the bad value and what is allowed.
    """

    exit_code = 2


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The valid name closest to a misspelt ``name`` (difflib), or None if none is close."""
    found = difflib.get_close_matches(str(name), sorted(set(map(str, choices))), n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'altmin'?)`` for a misspelt ``name``, or an empty string."""
    match = closest(name, choices)
    return f" (did you mean {match!r}?)" if match else ""
