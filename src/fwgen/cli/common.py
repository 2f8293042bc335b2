"""What the ``fwgen`` commands share: options, reading profiles and input, and ``--help``
that reads like the README (``fwgen render [OPTIONS] PROFILE``, not typer's ``{profile}``
and ``profile <str>``)."""

from __future__ import annotations

import functools
import signal
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from fwgen import stopping
from fwgen.errors import FwgenError, printable

if TYPE_CHECKING:
    from fwgen.policy.ir import Policy
    from fwgen.profile.portdb import Catalogue
    from fwgen.read.paths import Origins
    from fwgen.targets import RenderOptions

F = TypeVar("F", bound=Callable[..., Any])


STATE = {"debug": False, "quiet": False}
# Options of the whole program, taken wherever they stand on the line (before `--`).
GLOBAL_FLAGS = {"--debug": "debug", "-q": "quiet", "--quiet": "quiet"}


def take_global_flags(args: list[str]) -> list[str]:
    """*args* without ``--debug`` and ``-q``/``--quiet`` (before ``--``); STATE says which
    were given."""
    end = args.index("--") if "--" in args else len(args)
    for flag in GLOBAL_FLAGS.values():
        STATE[flag] = False
    kept = []
    for arg in args[:end]:
        if arg in GLOBAL_FLAGS:
            STATE[GLOBAL_FLAGS[arg]] = True
        else:
            kept.append(arg)
    return kept + args[end:]


def warn(text: object) -> None:
    """A warning on stderr, unless -q/--quiet."""
    if not STATE["quiet"]:
        typer.echo(f"warning: {text}", err=True)


def say(text: str) -> None:
    """A line of progress on stdout (what was written), unless -q/--quiet."""
    if not STATE["quiet"]:
        typer.echo(text)


def user_errors(command: F) -> F:
    """Report FwgenError as one line on stderr and exit 2 (a traceback only with --debug);
    a run stopped by a signal (`fwgen.stopping`: Ctrl-C, and SIGTERM and SIGHUP for a
    command whose ``stop_signals`` name them) says so and exits 130, wherever it came."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with stopping.stopping(getattr(command, "stop_signals", (signal.SIGINT,)), told):
                return command(*args, **kwargs)
        except KeyboardInterrupt:
            raise typer.Exit(stopping.INTERRUPTED) from None
        except FwgenError as error:
            if STATE["debug"]:
                raise
            for line in str(error).splitlines():
                typer.echo(f"error: {printable(line)}", err=True)  # no terminal escapes
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def told(stop: KeyboardInterrupt) -> None:
    """What a stopped command says (`fwgen.stopping.Stopped.said`, or that it was)."""
    typer.echo(getattr(stop, "said", "") or "fwgen: interrupted", err=True)


class ReadableArgument(TyperArgument):
    """An argument shown by its metavar alone: ``PROFILE``, ``[QUERY]``, ``PROFILE...``."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        if self.nargs != 1 and not name.endswith("..."):
            name += "..."
        return name if self.required else f"[{name}]"

    def display_type_rich(self, ctx: Any) -> str | None:
        return None if self.metavar is not None else super().display_type_rich(ctx)


class RootGroup(TyperGroup):
    """The ``fwgen`` group: takes ``--debug`` and ``-q`` anywhere on the line, the
    subcommands' own arguments included."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return list(super().parse_args(ctx, take_global_flags(list(args))))


class ReadableCommand(TyperCommand):
    """A command whose arguments are `ReadableArgument`s, and that refuses an option given
    twice instead of using the last one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if type(param) is TyperArgument:
                param.__class__ = ReadableArgument  # the same object, shown differently

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if ctx.resilient_parsing:  # completing a line: nothing is reported
            return list(super().parse_args(ctx, args))
        try:
            _, _, order = self.make_parser(ctx).parse_args(args=list(args))
        except Exception:  # a mistake the parse below reports in click's words
            order = []
        counts = Counter(p for p in order if _single_value_option(p))
        for option, count in counts.items():
            if count > 1:
                typer.echo(
                    f"error: {'/'.join(option.opts)} given {count} times; give it once",
                    err=True,
                )
                raise typer.Exit(2)
        return list(super().parse_args(ctx, args))


def _single_value_option(param: Any) -> bool:
    """An option that takes one value, so that a second would silently replace the first."""
    return bool(
        param.param_type_name == "option" and not (param.multiple or param.count or param.is_flag)
    )


class App(typer.Typer):
    """typer.Typer whose commands are `ReadableCommand`s."""

    def command(  # the same, with another default class
        self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any
    ) -> Callable[[F], F]:
        return super().command(name, cls=cls or ReadableCommand, **kwargs)


def parse_sets(values: list[str]) -> dict[str, list[str]]:
    """``NAME=CIDR[,CIDR...]`` options → {name: [cidr, ...]}."""
    out: dict[str, list[str]] = {}
    for value in values:
        name, sep, cidrs = value.partition("=")
        if not sep or not name.strip():
            raise FwgenError(
                f"--set {value!r}: write NAME=CIDR[,CIDR...], e.g. admins=192.0.2.0/24"
            )
        out.setdefault(name.strip(), []).extend(c.strip() for c in cidrs.split(",") if c.strip())
    return out


SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="NAME=CIDR[,CIDR...]",
        help="Replace a network's addresses, or give an interface group its interfaces "
        "(NAME=IFACE[,IFACE...]). Repeatable; repeated for one NAME, the lists add up.",
    ),
]
PortsFiles = Annotated[
    list[str] | None,
    typer.Option(
        "--ports",
        metavar="FILE",
        help="A site port database file (YAML list of services). Repeatable.",
    ),
]
AllowOutside = Annotated[
    list[Path] | None,
    typer.Option(
        "--allow-outside",
        metavar="DIR",
        help="Trust files in DIR too: extends, address lists, and a manifest's profiles, ports "
        "and outputs; by default they must stay in the folder tree of the file given. Repeatable.",
    ),
]
FlushRuleset = Annotated[
    bool,
    typer.Option(
        "--flush-ruleset",
        help="Take over the host firewall: nftables flushes the ruleset; iptables also empties "
        "nat, mangle and raw; ufw and windows remove or disable rules of others.",
    ),
]
Strict = Annotated[bool, typer.Option("--strict", help="Fail instead of approximating.")]
SS_HELP = "`ss -tulpnH` output taken on the host (as root: -p names the programs); - for stdin."

ProfileArgument = Annotated[
    str, typer.Argument(metavar="PROFILE", help="A built-in profile name or a profile file.")
]


def format_option(choices: str) -> Any:
    return typer.Option("--format", metavar="FORMAT", help=f"{choices}.")


def output_option(what: str) -> Any:
    return typer.Option(
        "--output", "-o", metavar="FILE", help=f"Write {what} here (atomically); - for stdout."
    )


def check_format(value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise FwgenError(f"--format {value!r}: choose {', '.join(choices)}")


def site_ports(ports_files: list[str] | None) -> Catalogue:
    """The port database with the site files given by --ports (and $FWGEN_PORTS)."""
    from fwgen.profile.portdb import catalogue

    return catalogue(tuple(ports_files or ()))


def load_policies(
    profiles: list[str],
    sets: list[str] | None,
    ports: Catalogue,
    allow_outside: list[Path] | None = None,
    origins: list[Origins | None] | None = None,
) -> list[Policy]:
    from fwgen.policy.resolve import resolve_profile

    overrides = parse_sets(sets or [])
    allowed = tuple(allow_outside or ())
    return [
        resolve_profile(p, overrides, ports, allow_outside=allowed, origins=named)
        for p, named in zip(profiles, origins or [None] * len(profiles), strict=True)
    ]


def read_input(name: str) -> tuple[str, str]:
    """The text of FILE, or of standard input for '-'; and the name to show."""
    from fwgen.host.observed import MAX_INPUT
    from fwgen.read.yamlsource import read_stream, read_text

    if name == "-":
        return read_stream(sys.stdin.buffer, "<stdin>", "input", MAX_INPUT), "<stdin>"
    return read_text(Path(name), name, what="input", limit=MAX_INPUT), name


def render_profile(
    profile: str,
    target: str,
    sets: list[str] | None,
    ports_files: list[str] | None,
    allow_outside: list[Path] | None,
    options: RenderOptions,
) -> tuple[Policy, dict[str, str]]:
    """Resolve one profile and render it, every warning on stderr: the Policy and the files."""
    from fwgen.errors import raise_collected
    from fwgen.review import netneeds
    from fwgen.targets.render import render_with_warnings

    (policy,) = load_policies([profile], sets, site_ports(ports_files), allow_outside)
    passing, refused = netneeds.warnings(policy)
    if options.strict:
        raise_collected([FwgenError(f"{text} (--strict)") for text in refused])
    files, warnings = render_with_warnings(policy, target, options)
    for warning in [*warnings, *passing, *refused]:
        warn(warning)
    return policy, files
