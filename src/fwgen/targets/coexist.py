"""Sharing iptables' filter table with Docker, Podman, fail2ban and libvirt.

fwgen's rules live in chains of its own (``FWGEN-INPUT``, ``FWGEN-OUTPUT``), which the
built-in chains jump to once each. With `containers:`, the new connections from
outside into the engine's networks are judged in ``FWGEN-CONTAINERS`` (and
``FWGEN-ROUTED``), jumped to first from the chain the engine evaluates first: Docker's
``DOCKER-USER``, which Docker jumps to first from ``FORWARD`` and never flushes; for
Podman, ``FORWARD`` itself. fwgen only ever restricts what the engine forwards: its
verdicts there are DROP and RETURN, never ACCEPT, so the rules after its jump
(fail2ban's bans, Docker's isolation) still apply. A load empties only fwgen's chains.

Only what goes out on one of the engine's bridges is judged, in ``FWGEN-ROUTED``:
connections the engine DNATs (published ports) on their original destination,
connections routed straight to a container's address (no DNAT) on their destination
address and port, as the inbound rules say. Replies, everything that comes from the
engine's own bridges (containers to each other and to the outside) and everything else
forwarded (the admin's own port forwards to a LAN, a VM's, Kubernetes' services) go
back to the other rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fwgen.policy.ir import Direction, Family, Policy, Rule
from fwgen.policy.owned import CONTAINER_CHAINS, CONTAINERS, DOCKER_USER, ROUTED
from fwgen.targets.text import DROP_LOG_LIMIT, ESTABLISHED, drop_log_prefix, quoted, rule_heading

OWN_CHAINS: dict[Direction, str] = {"in": "FWGEN-INPUT", "out": "FWGEN-OUTPUT"}
FORWARD_CHAIN = "FWGEN-FORWARD"  # the forward drop log of a whole-table load
# Every chain a load of fwgen's iptables files may make (not the shadow's): the loader
# deletes those its own files do not declare, which an earlier load left behind.
LOADED_CHAINS = (*OWN_CHAINS.values(), FORWARD_CHAIN, *CONTAINER_CHAINS)
# Where the jump to FWGEN-CONTAINERS goes: the chain the engine evaluates first.
ENGINE_CHAIN = {"docker": DOCKER_USER, "podman": "FORWARD"}
# The engine's bridges, as iptables' interface wildcards: Docker's docker0 (and
# docker_gwbridge) and br-<network id>; Podman's podman0, podman1, ... (netavark) and
# cni-podman0, ... (CNI). A bridge named otherwise is not recognised (see docs/containers.md).
BRIDGES = {"docker": ("docker+", "br-+"), "podman": ("podman+", "cni-podman+")}
MAX_COMMENT = 200
FROM_ENGINE = "from a bridge of the engine: its rules decide"
NOT_INTO_ENGINE = "not to a bridge of the engine: not for fwgen"
INTO_ENGINE = "to a bridge of the engine"


@dataclass(frozen=True)
class Jump:
    """One jump from a chain to a chain of fwgen's: exactly one, first or last."""

    builtin: str
    chain: str
    first: bool  # put ahead of the chain's rules on every load, else appended once


def jumps(policy: Policy) -> list[Jump]:
    """INPUT and OUTPUT are appended to: programs that insert ahead (fail2ban's bans)
    keep going first. Docker's contract is that FORWARD jumps to DOCKER-USER first, and
    fwgen's container chain comes first in DOCKER-USER: an engine that inserts its
    accepts above (Docker 20.10 in IPv6, at each start) is put back behind them."""
    out = [Jump("INPUT", OWN_CHAINS["in"], first=False)]
    if policy.defaults.outbound == "drop":
        out.append(Jump("OUTPUT", OWN_CHAINS["out"], first=False))
    if policy.containers == "docker":
        out.append(Jump("FORWARD", DOCKER_USER, first=True))
    if policy.containers is not None:
        out.append(Jump(ENGINE_CHAIN[policy.containers], CONTAINERS, first=True))
    return out


def bridges(policy: Policy) -> tuple[str, ...]:
    assert policy.containers is not None
    return BRIDGES[policy.containers]


def _comment(text: str) -> str:
    return f"-m comment --comment {quoted(text, MAX_COMMENT)}"


def container_lines(
    policy: Policy,
    family: Family,
    rule_lines: Callable[[Rule, Family, str, bool], list[str]],
    drop: Callable[[str, str], list[str]],
    log: bool = True,
) -> list[str]:
    """The lines of both container chains of one family. *rule_lines(rule, family,
    chain, published)* gives a rule's lines, RETURN its verdict (*published*: matched on
    the original destination of a DNATed connection); *drop(chain, match)* a drop;
    *log*: whether to log the drops the profile asks to log (else *drop* does)."""
    engine = policy.containers
    out = [
        f"-A {CONTAINERS} -m conntrack --ctstate ESTABLISHED,RELATED {_comment(ESTABLISHED)} -j RETURN"
    ]
    out += [f"-A {CONTAINERS} -i {b} {_comment(FROM_ENGINE)} -j RETURN" for b in bridges(policy)]
    out += [f"-A {CONTAINERS} -o {b} {_comment(INTO_ENGINE)} -g {ROUTED}" for b in bridges(policy)]
    out.append(f"-A {CONTAINERS} {_comment(NOT_INTO_ENGINE)} -j RETURN")
    published, routed = [], []
    for rule in policy.rules:
        if rule.published() and family in rule.families:
            published += [f"# {rule_heading(rule)}", *rule_lines(rule, family, ROUTED, True)]
            routed += [f"# {rule_heading(rule)}", *rule_lines(rule, family, ROUTED, False)]
    for lines, match, what in (
        (published, "-m conntrack --ctstate DNAT ", f"published by {engine}"),
        (routed, "", f"routed to a container of {engine}"),
    ):
        if policy.log_drops and log:
            prefix = quoted(drop_log_prefix("containers"), 28)
            lines.append(
                f"-A {ROUTED} {match}-m limit --limit {DROP_LOG_LIMIT} -m comment --comment "
                f'"log what the policy drops" -j LOG --log-prefix {prefix}'
            )
        lines += drop(ROUTED, match + _comment(f"{what}, allowed by no inbound rule"))
    return out + published + routed


# Shell functions both loaders (fwgen-iptables.sh, fwgen-ufw.sh) define.
FIRST = """\
# fwgen_first CMD CHAIN TARGET: the jump CHAIN -> TARGET made the first rule of CHAIN,
# exactly once (copies further down deleted), in one atomic step.
fwgen_first() {
    {
        printf '*filter\\n'
        "$1" -S "$2" | grep -xF -- "-A $2 -j $3" | sed 's/^-A /-D /' || true
        printf -- '-I %s 1 -j %s\\nCOMMIT\\n' "$2" "$3"
    } | "$1-restore" --noflush
}"""


# Shell functions of the iptables loader (STALE: of the ufw script without `containers:` too).
STALE = """\
# fwgen_stale CMD CHAIN...: those of fwgen's chains that exist (an earlier load made them,
# this profile declares none of them) deleted, every jump to them first, in one atomic step.
fwgen_stale() {
    fwgen_cmd=$1
    shift
    fwgen_rules=$("$fwgen_cmd" -S)
    fwgen_gone=
    for fwgen_chain in "$@"; do
        if printf '%s\\n' "$fwgen_rules" | grep -qxF -- "-N $fwgen_chain"; then
            fwgen_gone="$fwgen_gone $fwgen_chain"
        fi
    done
    [ -n "$fwgen_gone" ] || return 0
    {
        printf '*filter\\n'
        for fwgen_chain in $fwgen_gone; do
            printf '%s\\n' "$fwgen_rules" | grep -E -- "^-A .* -[jg] $fwgen_chain\\$" | sed 's/^-A /-D /' || true
        done
        for fwgen_chain in $fwgen_gone; do printf -- '-F %s\\n' "$fwgen_chain"; done
        for fwgen_chain in $fwgen_gone; do printf -- '-X %s\\n' "$fwgen_chain"; done
        printf 'COMMIT\\n'
    } | "$fwgen_cmd-restore" --noflush
}"""

# The comments of the rules every whole-table load by fwgen before its own chains put
# straight into the built-in chains (loopback, the established shortcut, invalid
# packets, the drop log): no other program writes them.
WHOLE_TABLE_MARKS = (
    "loopback",
    "replies and related ",
    "invalid packets",
    "log what the policy drops",
)


def whole_table_check() -> str:
    """A shell function that stops the loader, before it changes anything, when the
    built-in chains still hold the rules of a whole-table load by an earlier fwgen
    (straight in INPUT, OUTPUT, FORWARD): beside the loader's chains they would keep
    admitting what the old profile did. Which of those chains' rules are fwgen's cannot
    be told for sure, so they are named, not deleted."""
    marks = "|".join(WHOLE_TABLE_MARKS)
    return f"""\
# fwgen_whole_table CMD: stop if a built-in chain holds rules of an older whole-table load.
fwgen_whole_table() {{
    fwgen_found=$("$1" -S | grep -E -- '^-A (INPUT|OUTPUT|FORWARD) .*-m comment --comment "?({marks})' | head -n 1 || true)
    [ -n "$fwgen_found" ] || return 0
    echo "fwgen: $1: the built-in chains hold the rules of a whole-table load by an earlier fwgen ($fwgen_found); beside fwgen's chains they would keep admitting what the old profile did: delete them by hand ($1 -S INPUT, OUTPUT and FORWARD list them, each named by its comment; keep other programs' rules) and run this again" >&2
    exit 1
}}"""


OURS = """\
# fwgen_ours DIGEST FILE...: stop, changing nothing, unless each file is of the render that
# wrote this script (a later render for the whole-table mode replaces them, not this script).
fwgen_ours() {
    fwgen_digest=$1
    shift
    for fwgen_file in "$@"; do
        if ! grep -qF -- "# Inputs sha256: $fwgen_digest " "$fwgen_file"; then
            echo "fwgen: $PWD/$fwgen_file: not rendered with this script (another profile, or the whole-table mode, which iptables-restore or fwgen apply loads); render the profile into this folder again, or remove this script" >&2
            exit 1
        fi
    done
}"""


def declared_check(skip_block: bool) -> str:
    """A shell function that stops the script when a file (each argument) declares a
    chain fwgen relies on: a ``:CHAIN`` line in an iptables-restore file empties that
    chain each time the file is loaded, with --noflush too. *skip_block*: fwgen's own
    block (between its markers) may declare fwgen's chains."""
    names = "|".join([DOCKER_USER, *CONTAINER_CHAINS])
    skip = "1" if skip_block else "0"
    return f"""\
# fwgen_declared FILE...: stop if a file declares a chain fwgen relies on.
fwgen_declared() {{
    for fwgen_file in "$@"; do
        [ -f "$fwgen_file" ] || continue
        fwgen_found=$(awk -v skip={skip} '
            skip && /^# BEGIN fwgen([ :]|$)/ {{ inside = 1 }}
            skip && /^# END fwgen([ :]|$)/ {{ inside = 0; next }}
            !inside && /^:({names})[ \\t]/ {{ print FNR " " substr($1, 2); exit }}
        ' "$fwgen_file")
        [ -n "$fwgen_found" ] || continue
        fwgen_chain=${{fwgen_found#* }}
        if [ "$fwgen_chain" = {DOCKER_USER} ]; then
            fwgen_why="so each ufw reload empties that chain (fwgen's jump and fail2ban's go with it); take that section out (it is ufw-docker's: fwgen's block does its work)"
        else
            fwgen_why="fwgen's own chain, loaded by another of fwgen's outputs (the ufw and iptables targets cannot share a host); take it out"
        fi
        echo "fwgen: $fwgen_file:${{fwgen_found%% *}}: declares :$fwgen_chain, $fwgen_why and run this again" >&2
        exit 1
    done
}}"""
