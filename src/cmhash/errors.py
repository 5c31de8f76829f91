"""The errors cmhash raises on bad input, in one module every layer imports.

Both are ``ValueError`` subclasses, so the CLI (exit code 2 with the message) and the HTTP
service (422) treat them as the user's input, not as a crash.
"""

from __future__ import annotations


class CmhashError(ValueError):
    """Base of cmhash's own input errors."""


class DataError(CmhashError):
    """Bad input data; the message names the source (file), the field and the problem."""

    def __init__(self, problem: str, *, source: str | None = None, field: str | None = None):
        where = ", ".join(p for p in (f"file {source!r}" if source else "", f"field {field!r}" if field else "") if p)
        super().__init__(f"{where}: {problem}" if where else problem)
        self.source, self.field, self.problem = source, field, problem


class ConfigError(CmhashError, KeyError):
    """A config key, override, profile or search space that does not fit (names the key and the source).

    Also a ``KeyError`` (an unknown key is a lookup that failed), so code that caught the
    KeyError of earlier versions keeps working; printed as the plain message, without KeyError's quotes.
    """

    __str__ = CmhashError.__str__
