"""The one exception type that the CLI turns into a one-line error and a non-zero exit."""


class LeadingTermsError(Exception):
    """A user-facing error: bad input, missing files, impossible sizes, divergence.

    The message must be one line that says what is wrong and, where possible, what to do.
    """
