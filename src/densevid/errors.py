"""The one exception type users see for bad input, and how messages count."""


class DensevidError(ValueError):
    """Bad input: the message names the file, video or value and what to do about it."""


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 video', '2 videos': messages count things in words that agree."""
    return f"{n} {word if n == 1 else many or word + 's'}"
