"""Exceptions and warnings raised while reading MRC files.

:class:`MrcReadError` is a ``ValueError`` whose message starts with the file
path; the two subclasses are also a ``FileNotFoundError`` and a
``PermissionError`` so that callers may catch either family.
"""

from __future__ import annotations

__all__ = ["MrcFileNotFoundError", "MrcPermissionError", "MrcReadError", "MrcReadWarning"]


class MrcReadError(ValueError):
    """An MRC file cannot be read; the message starts with the file path."""


class MrcFileNotFoundError(MrcReadError, FileNotFoundError):
    """The MRC file does not exist."""


class MrcPermissionError(MrcReadError, PermissionError):
    """The MRC file exists but cannot be read."""


class MrcReadWarning(UserWarning):
    """A file was read, but something about it needed a default or a fix."""
