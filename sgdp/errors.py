"""Error types. Every error a user can cause is an ``SgdpError``; the CLI prints it as one line."""

from __future__ import annotations


def one_line(text: str, limit: int = 2000) -> str:
    """A message as one line: control characters escaped (a NUL or a newline in a name cannot split
    it or reach the terminal), cut with an ellipsis when very long."""
    out = "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in text)
    return out if len(out) <= limit else out[: limit - 1] + "…"


class SgdpError(Exception):
    """Root of every error sgdp reports to a user (exit code 2)."""


class ConfigError(SgdpError, ValueError):
    """An invalid topology, timeline or scenario file.

    The message names the file, the path to the field and the offending value.
    """

    def __init__(self, file: str, path: str, message: str):
        self.file = file
        self.path = path
        self.detail = message
        where = f"{file}: {path}: " if path else f"{file}: "
        super().__init__(one_line(where + message))


class InputError(SgdpError, ValueError):
    """Bad input that is not a topology: a capture, a packet description, a command-line value."""


class UsageError(SgdpError):
    """A command-line usage error."""


class OutputError(SgdpError):
    """An output that cannot be written: a full disk, a permission problem (names the path)."""


class Interrupted(BaseException):
    """The run was stopped by a signal (SIGTERM; SIGINT arrives as KeyboardInterrupt).

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` swallows it; cleanup
    code sees it and re-raises."""

    def __init__(self, signum: int):
        import signal

        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.name}")
