"""The one exception type the command line turns into a clear message instead of a traceback."""


class UserError(Exception):
    """Bad input from the user (a path, a flag, a file's content); the message says what and where."""
