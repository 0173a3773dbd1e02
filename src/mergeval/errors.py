"""Errors meant for people. The CLI prints a UserError's message (no traceback) and exits non-zero."""


class UserError(Exception):
    """A problem with the user's input or environment, with a message that says what to do.

    The message is one or two sentences: what is wrong, then the fix.
    """

    exit_code = 2


class StoreError(UserError):
    """The results store cannot be opened or is damaged; nothing was written to it."""
