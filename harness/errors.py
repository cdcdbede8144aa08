"""Errors that mean "bad input": the CLI prints them and exits with code 2."""


class InputError(Exception):
    """A problem with what the user gave (suite file, argument, component name).

    The message names the file, the key, the bad value and what is allowed.
    """

    exit_code = 2
