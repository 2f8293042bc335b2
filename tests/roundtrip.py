"""Read generated rulesets back into rule tuples, to compare with the Policy they came from.

A tuple is (direction, family, proto, port or ICMP type, remote address, local address,
interface), one per port element, address and interface, so splitting and grouping do not
matter; "any" stands for an unrestricted side, "-" for the port of a protocol without
ports (ESP, AH, GRE). Only what fwgen emits is understood.
"""

from __future__ import annotations

import re

from fwgen.policy.ir import Policy
from fwgen.profile.fields import PORTLESS
from fwgen.profile.icmp import ICMP_TYPES, ICMPV6_TYPES

Tuple = tuple[str, str, str, str, str, str, str]
BY_NUMBER = {str(number): name for name, number in PORTLESS.items()}
FAMILIES = ("ipv4", "ipv6")
ICMP_NAMES = {("icmp", str(v)): k for k, v in ICMP_TYPES.items()} | {
    ("icmpv6", str(v)): k for k, v in ICMPV6_TYPES.items()
}


WHOLE = {"0.0.0.0/0", "::/0"}


def canonical(tuples: set[Tuple]) -> set[Tuple]:
    """A whole family written out (0.0.0.0/0, ::/0) means the same as "any" for that family."""
    return {
        (d, f, p, i, "any" if r in WHOLE else r, "any" if loc in WHOLE else loc, on)
        for d, f, p, i, r, loc, on in tuples
    }


def family_of(address: str) -> str:
    return "ipv6" if ":" in address else "ipv4"


def expected(policy: Policy) -> set[Tuple]:
    out = set()
    for rule in policy.rules:
        items = [str(p) for p in rule.ports] or list(rule.icmp_types) or ["-"]
        for family in rule.families:
            remotes = (
                list(policy.address_set(rule.remote).family(family)) if rule.remote else ["any"]
            )
            locals_ = [a for a in rule.local if family_of(a) == family] or ["any"]
            out |= {
                (rule.direction, family, rule.proto, i, r, loc, on)
                for i in items
                for r in remotes
                for loc in locals_
                for on in rule.interfaces or ["any"]
            }
    return out


def _elements(text: str) -> list[str]:
    text = text.strip()
    return [e.strip() for e in text[1:-1].split(",")] if text.startswith("{") else [text]


def parse_nftables(text: str) -> set[Tuple]:
    sets = {
        m[1]: _elements("{" + m[2] + "}")
        for m in re.finditer(r"set (\S+) \{[^}]*?elements = \{ ([^}]*) \}", text, re.S)
    }
    out: set[Tuple] = set()
    direction = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("chain "):
            direction = {"chain input {": "in", "chain output {": "out"}.get(line, "")
        if (
            not direction
            or not line.endswith('"')
            or " accept comment " not in line
            or line.startswith(('iif "lo"', 'oif "lo"', "ct "))
        ):
            continue
        statement = line.split(" accept comment ")[0]
        statement = re.sub(r" (ct state new )?update @\S+ \{[^}]*\}", "", statement)
        statement = re.sub(r' log prefix "[^"]*"', "", statement)
        peer = "saddr" if direction == "in" else "daddr"
        families, remotes, locals_ = list(FAMILIES), ["any"], ["any"]
        m = re.search(rf"(ip6?) {peer} @(\S+)", statement)
        if m:
            families, remotes = ["ipv4" if m[1] == "ip" else "ipv6"], sets[m[2]]
        m = re.search(
            rf"(ip6?) {'daddr' if direction == 'in' else 'saddr'} (\{{[^}}]*\}}|[^ @{{]\S*)",
            statement,
        )
        if m:
            families, locals_ = ["ipv4" if m[1] == "ip" else "ipv6"], _elements(m[2])
        m = re.search(r"meta nfproto (ipv4|ipv6)", statement)
        if m:
            families = [m[1]]
        m = re.search(r"[io]ifname (\{[^}]*\}|\S+)", statement)
        interfaces = [i.strip('"') for i in _elements(m[1])] if m else ["any"]
        m = re.search(r"(tcp|udp|sctp) dport (\{[^}]*\}|\S+)", statement)
        portless = re.search(r"(?:meta l4proto|ip6 nexthdr) (\d+)", statement)
        if m:
            proto, items = m[1], _elements(m[2])
        elif portless:
            proto, items = BY_NUMBER[portless[1]], ["-"]
        else:
            m = re.search(r"(icmpv6|icmp) type (\{[^}]*\}|\S+)", statement)
            assert m, statement
            proto, items = m[1], _elements(m[2])
            families = ["ipv4" if proto == "icmp" else "ipv6"]
        out |= {
            (direction, f, proto, i, r, loc, on)
            for f in families
            for i in items
            for r in remotes
            for loc in locals_
            for on in interfaces
        }
    return out


def parse_iptables(files: dict[str, str]) -> set[Tuple]:
    ipsets: dict[str, list[str]] = {}
    for line in files.get("ipsets", "").splitlines():
        if line.startswith("add "):
            _, name, element = line.split()
            ipsets.setdefault(name.removesuffix("-n"), []).append(element)
    out: set[Tuple] = set()
    for filename, family in (("rules.v4", "ipv4"), ("rules.v6", "ipv6")):
        for line in files[filename].splitlines():
            if (
                not line.startswith(("-A FWGEN-INPUT", "-A FWGEN-OUTPUT"))
                or not line.endswith("-j ACCEPT")
                or (" -p " not in line and " -m ah " not in line)
                or " lo " in line  # loopback and the established shortcut: every chain's start
                or "--ctstate ESTABLISHED" in line
            ):
                continue
            direction = "in" if line.startswith("-A FWGEN-INPUT") else "out"
            line = re.sub(r' --comment "[^"]*"', "", line)
            # a rate limit's tracker decides which bucket counts, not what is admitted
            line = re.sub(
                r" -m set (! )?--match-set \S+ (src|dst) -m hashlimit ", " -m hashlimit ", line
            )
            peer, local = ("-s", "-d") if direction == "in" else ("-d", "-s")
            remote = re.search(rf" {peer} (\S+)", line)
            dest = re.search(rf" {local} (\S+)", line)
            match_set = re.search(r"--match-set (\S+) ", line)
            remotes = ipsets[match_set[1]] if match_set else [remote[1] if remote else "any"]
            proto = "51" if " -m ah " in line else re.search(r" -p (\S+)", line)[1]  # type: ignore[index]
            proto = "icmpv6" if proto == "ipv6-icmp" else BY_NUMBER.get(proto, proto)
            ports = re.search(r"--dports? (\S+)", line)
            way = re.search(rf" {'-i' if direction == 'in' else '-o'} (\S+)", line)
            on = way[1].replace("+", "*") if way else "any"
            if proto in PORTLESS:
                items = ["-"]
            elif ports:
                items = [p.replace(":", "-") for p in ports[1].split(",")]
            else:
                number = re.search(r"--icmp(?:v6)?-type (\S+)", line)[1]  # type: ignore[index]
                items = [ICMP_NAMES[(proto, number)]]
            out |= {
                (direction, family, proto, i, r, dest[1] if dest else "any", on)
                for i in items
                for r in remotes
            }
    return out


UFW = re.compile(
    r"^ufw (?:allow|limit)(?: in|( out))?(?: on (\S+))?(?: log)? proto (tcp|udp) "
    r"from (\S+) to (\S+) port (\S+) comment "
)


def _ufw_side(address: str) -> list[tuple[str, str]]:
    if address == "any":
        return [(f, "any") for f in FAMILIES]
    if address in ("0.0.0.0/0", "::/0"):
        return [(family_of(address), "any")]
    return [(family_of(address), address)]


UFW_BLOCKS = {"rules.v4": "before.rules", "rules.v6": "before6.rules"}


def ufw_block(script: str, file: str) -> str:
    """fwgen's block of /etc/ufw/FILE (before.rules or before6.rules), markers included."""
    delimiter = "FWGEN_" + file.upper().replace(".", "_")
    return script.split(f"<<'{delimiter}'\n")[1].split(f"\n{delimiter}\n")[0] + "\n"


def ufw_block_restore(script: str, file: str) -> str:
    """The block as ufw loads it (with its chains), for ``iptables-restore --test``."""
    prefix = "ufw6" if "6" in file else "ufw"
    chains = ("before-input", "before-output", "before-forward", "logging-deny")
    declared = "".join(f":{prefix}-{c} - [0:0]\n" for c in chains)
    return f"*filter\n{declared}{ufw_block(script, file)}COMMIT\n"


def ufw_blocks(script: str) -> dict[str, str]:
    """fwgen's blocks of before.rules and before6.rules, in the iptables target's chain names."""
    return {
        name: re.sub(
            r"^-A ufw6?-before-(input|output)", _chain, ufw_block(script, file), flags=re.M
        )
        for name, file in UFW_BLOCKS.items()
    }


def _chain(match: re.Match[str]) -> str:
    return f"-A FWGEN-{match[1].upper()}"


def parse_ufw(script: str) -> set[Tuple]:
    """ufw commands, and the ICMP and rate-limited rules of fwgen's before.rules blocks."""
    out: set[Tuple] = parse_iptables(ufw_blocks(script))
    for line in script.splitlines():
        m = UFW.match(line)
        if not m:
            continue
        direction = "out" if m[1] else "in"
        on = m[2].replace("+", "*") if m[2] else "any"
        src, dst = _ufw_side(m[4]), _ufw_side(m[5])
        remote, local = (src, dst) if direction == "in" else (dst, src)
        for family, r in remote:
            for lfam, loc in local:
                if loc != "any" and lfam != family:
                    continue
                out |= {
                    (direction, family, m[3], p.replace(":", "-"), r, loc, on)
                    for p in m[6].split(",")
                }
    return out


PARAM = re.compile(r"-(\w+) ((?:'(?:[^']|'')*'(?:,'(?:[^']|'')*')*)|\S+)")
FULL = {"0.0.0.0-255.255.255.255": "ipv4", "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "ipv6"}


def parse_windows(script: str) -> set[Tuple]:
    out: set[Tuple] = set()
    for line in script.splitlines():
        # `if (-not $Present.ContainsKey('NAME')) { New-NetFirewallRule -Name 'NAME' ... }`:
        # a NAME holds no space, so the command starts at the first "New-NetFirewallRule ".
        start = line.find("New-NetFirewallRule ")
        if start < 0 or line.lstrip().startswith("#"):
            continue
        params = {
            k: [s.replace("''", "'") for s in re.findall(r"'((?:[^']|'')*)'", v)] or [v]
            for k, v in PARAM.findall(line[start:])
        }
        direction = "in" if params["Direction"] == ["Inbound"] else "out"
        names = {"TCP": "tcp", "UDP": "udp", "ICMPv4": "icmp", "ICMPv6": "icmpv6"} | BY_NUMBER
        proto = names[params["Protocol"][0]]
        items = (
            params.get("LocalPort")
            or params.get("RemotePort")
            or [ICMP_NAMES[(proto, t)] for t in params.get("IcmpType", [])]
            or ["-"]
        )
        remotes = [
            (FULL[a], "any") if a in FULL else (family_of(a), a)
            for a in params.get("RemoteAddress", [])
        ]
        if not remotes:
            remotes = [
                (f, "any")
                for f in (
                    ("ipv4",) if proto == "icmp" else ("ipv6",) if proto == "icmpv6" else FAMILIES
                )
            ]
        locals_ = params.get("LocalAddress", ["any"])
        interfaces = params.get("InterfaceAlias", ["any"])
        for family, r in remotes:
            for loc in locals_:
                if loc != "any" and family_of(loc) != family:
                    continue
                out |= {
                    (direction, family, proto, i, r, loc, on) for i in items for on in interfaces
                }
    return out
