"""Errors the entries turn into one line (a leaf module: it imports nothing of the project)."""


class OptionError(ValueError):
    """A bad option; the message names the key."""
