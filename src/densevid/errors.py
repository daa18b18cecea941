"""The one exception type users see for bad input."""


class DensevidError(ValueError):
    """Bad input: the message names the file, video or value and what to do about it."""
