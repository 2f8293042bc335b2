"""The one exception root and its few subclasses.

Every user-facing message reads ``FILE:LINE: FIELD: what is wrong (how to fix)``.
The CLI prints ``str(error)`` and exits 2; nothing here formats tracebacks.
"""

from __future__ import annotations

from collections.abc import Iterable


class FwgenError(Exception):
    """A mistake in what the user gave fwgen: always reported as one line per problem."""

    def __init__(
        self, message: str, *, path: str | None = None, line: int | None = None, field: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.field = field

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = f"{self.path}:{self.line}: " if self.line else f"{self.path}: "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


class ProfileError(FwgenError):
    """A profile (or a file it names) could not be read or is invalid."""


class ResolveError(FwgenError):
    """A valid profile names something that does not exist (a service, a network, ...)."""


class RenderError(FwgenError):
    """A target cannot express what the policy asks for."""


class FwgenErrors(FwgenError):
    """Several problems found in one run, reported together."""

    def __init__(self, errors: Iterable[FwgenError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))

    def __str__(self) -> str:
        return self.message


def printable(text: str) -> str:
    """*text* with every character that is not printable (line breaks included) as ``?``."""
    if text.isprintable():  # nearly always: no character to look at one by one
        return text
    return "".join(c if c.isprintable() else "?" for c in text)


def split_location(location: str) -> tuple[str, int | None]:
    """``"profiles/web.yaml:12"`` → ``("profiles/web.yaml", 12)``; the line is None when absent."""
    path, _, line = location.rpartition(":")
    return path, int(line) if line.isdigit() else None


def raise_collected(errors: list[FwgenError]) -> None:
    """Raise the one error, or all of them together; do nothing when there are none."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise FwgenErrors(errors)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'https'?)`` or the empty string when nothing is close."""
    import difflib

    by_lower = {c.lower(): c for c in sorted(set(choices), reverse=True)}  # case aside
    close = difflib.get_close_matches(word.lower(), sorted(by_lower), n=1, cutoff=0.6)
    return f" (did you mean '{by_lower[close[0]]}'?)" if close else ""
