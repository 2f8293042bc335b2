"""``--help`` that reads like the README: ``fwgen render [OPTIONS] PROFILE``, ``PROFILE``
in the argument list, not typer's ``{profile}`` and ``profile <str>``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import typer
from typer.core import TyperArgument, TyperCommand

F = TypeVar("F", bound=Callable[..., Any])


class ReadableArgument(TyperArgument):
    """An argument shown by its metavar alone: ``PROFILE``, ``[QUERY]``, ``PROFILE...``."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        if self.nargs != 1 and not name.endswith("..."):
            name += "..."
        return name if self.required else f"[{name}]"

    def display_type_rich(self, ctx: Any) -> str | None:
        return None if self.metavar is not None else super().display_type_rich(ctx)


class ReadableCommand(TyperCommand):
    """A command whose arguments are `ReadableArgument`s."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if type(param) is TyperArgument:
                param.__class__ = ReadableArgument  # the same object, shown differently


class App(typer.Typer):
    """typer.Typer whose commands are `ReadableCommand`s."""

    def command(  # the same, with another default class
        self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any
    ) -> Callable[[F], F]:
        return super().command(name, cls=cls or ReadableCommand, **kwargs)
