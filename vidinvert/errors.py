"""The one error type vidinvert raises for anything a user can fix.

Every layer raises :class:`VidinvertError` with a message that is one line (plus, rarely, a few short
``details`` lines: the model files a first run lacks), names the
offending thing (a path, a key, a value) and, where possible, says what to do. The CLI
renders it once, in red, and exits with ``exit_code``; ``--debug`` shows the traceback.
Anything else that escapes is a bug and is rendered as an internal error.
"""

from __future__ import annotations


class VidinvertError(Exception):
    """A user-facing error: one line, actionable, rendered once by the CLI.

    ``exit_code`` lets a command choose a specific non-zero status (2 is reserved for
    usage errors by Click; 1 is the default).
    """

    def __init__(self, message: str, *, exit_code: int = 1, details: tuple[str, ...] = ()) -> None:
        message = " ".join(str(message).split())  # always one line
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        #: a few more short lines the CLI prints under the message (what is missing and how to get it)
        self.details = tuple(" ".join(str(d).split()) for d in details)

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message
