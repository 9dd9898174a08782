"""The one exception type users see.

Anything raised as :class:`UserError` is a problem with the user's input (a file, a
column, a config value); the CLI prints its message as one line on stderr and exits
with status 2, never a traceback. The message names the problem and the fix.
"""


class UserError(ValueError):
    """Bad input from the user: a one-line message naming the problem and the fix."""
