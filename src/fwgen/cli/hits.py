"""`fwgen hits`: how many new connections each rule of a live ruleset admitted."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fwgen import __version__
from fwgen.cli.common import (
    AllowOutside,
    PortsFiles,
    ProfileArgument,
    SetOption,
    check_format,
    format_option,
    load_policies,
    site_ports,
)
from fwgen.errors import FwgenError
from fwgen.targets import TARGETS

if TYPE_CHECKING:
    from fwgen.policy.ir import Policy


# How many --input files each target reads, and which.
INPUTS = {
    "nftables": (1, "one file (`nft -j list table inet fwgen`)"),
    "iptables": (2, "at most two files (`iptables-save -c` and `ip6tables-save -c`)"),
}


def rendered_rules(policy: Policy, target: str) -> dict[str, str]:
    """What fwgen renders for *policy* on *target*, by the family it loads into: the rules a
    live counter may be credited to (`fwgen.host.ownrules`)."""
    from fwgen.targets.render import render

    if target == "nftables":
        return {"inet": render(policy, target)["fwgen.nft"]}
    if target == "iptables":
        files = render(policy, target)
        return {family: files[name] for family, name in TARGETS[target].family_files.items()}
    if target == "ufw":
        return {"ufw": render(policy, target)["fwgen-ufw.sh"]}
    return {}


def hits(
    profile: ProfileArgument,
    target: Annotated[
        str, typer.Option("--target", "-t", metavar="TARGET", help="nftables, iptables or ufw.")
    ],
    format_: Annotated[str, format_option("text, json or sarif")] = "text",
    input_: Annotated[
        list[Path] | None,
        typer.Option(
            "--input",
            metavar="FILE",
            help="Read the counters from FILE (`nft -j list table inet fwgen`, or "
            "`iptables-save -c` and `ip6tables-save -c`), not the kernel.",
        ),
    ] = None,
    set_: SetOption = None,
    ports_files: PortsFiles = None,
    allow_outside: AllowOutside = None,
) -> None:
    """Map the live counters of PROFILE's rules back to its lines; flag rules with no hits.

    Exit 0 (rules with no hits are findings of level info), 2 on a user mistake.

    Example: fwgen hits webserver -t nftables --format sarif > hits.sarif
    """
    from fwgen.host import hits as live
    from fwgen.review import hits as mapping

    check_format(format_, ("text", "json", "sarif"))
    (policy,) = load_policies([profile], set_, site_ports(ports_files), allow_outside)
    rendered = rendered_rules(policy, target)
    if input_:
        from fwgen.read.yamlsource import read_text

        most, files = INPUTS.get(target, (len(input_), ""))
        if len(input_) > most:
            raise FwgenError(f"--input given {len(input_)} times: {target} takes {files}")
        texts = [read_text(p, str(p), "counters", limit=256 << 20) for p in input_]
        if target == "nftables":
            counted = live.parse_nft(texts[0], time.time(), rendered["inet"])
            if counted is None:
                raise FwgenError(f"{input_[0]}: holds no table inet fwgen")
        elif target == "iptables":
            counted = live.parse_iptables(texts, rendered)
        elif target == "ufw":
            raise FwgenError(
                "--input reads nftables or iptables counters; for ufw, run on the host"
            )
        else:
            counted = live.read(target, rendered)  # says why not
    else:
        counted = live.read(target, rendered)
    found = mapping.hits(policy, counted)
    if format_ == "json":
        typer.echo(json.dumps(mapping.as_json(found, counted), indent=2))
    elif format_ == "sarif":
        typer.echo(json.dumps(mapping.as_hits_sarif(found, counted, __version__), indent=2))
    else:
        typer.echo(mapping.as_text(found, counted), nl=False)
