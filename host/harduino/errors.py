"""The one kind of error a user can cause, and how the CLI reports it."""


class UserError(Exception):
    """Bad input from the user: a port, a file, a label, a model that does not fit.

    The message is one sentence naming the thing and the fix; the CLI prints it
    without a traceback and exits non-zero.
    """
