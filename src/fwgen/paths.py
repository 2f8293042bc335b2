"""Where the shipped data lives: inside the wheel, or at the top of a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """``profiles`` or ``templates``: packaged copy first, then the checkout's top level."""
    packaged = _PACKAGE / name
    if packaged.is_dir():
        return packaged
    return _PACKAGE.parent.parent / name


def profiles_dir() -> Path:
    return data_dir("profiles")


def templates_dir() -> Path:
    return data_dir("templates")
