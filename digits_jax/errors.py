"""User-facing errors: the CLI turns these into one line on stderr and an exit code."""


class DigitsJaxError(Exception):
    """An error caused by the user's input or environment, not by a bug.

    The CLI prints ``str(error)`` on one line and exits with ``exit_code``.
    """

    exit_code: int = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
