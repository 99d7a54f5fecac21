"""Errors that end a command with a one-line message and exit code 2 (usage or input error)."""


class InputError(Exception):
    """Bad input the user can fix: a capture that cannot be read, a wrong site file, a bad option."""
