"""The one exception type users see for bad input.

>>> from xai_widgets.errors import InputError
>>> issubclass(InputError, ValueError)
True
"""


class InputError(ValueError):
    """Bad input: the message names the problem and how to fix it."""


class Cancelled(Exception):
    """Raised inside a computation that a newer request has superseded."""
