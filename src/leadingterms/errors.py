"""The one exception type that the CLI turns into a one-line error and a non-zero exit."""


class LeadingTermsError(Exception):
    """A user-facing error: bad input, missing files, impossible sizes, divergence.

    The message must be one line that says what is wrong and, where possible, what to do.
    """


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its class name when empty), at most ``limit`` characters:
    what a one-line error quotes from a third-party library's exception."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else exc.__class__.__name__)[:limit]
