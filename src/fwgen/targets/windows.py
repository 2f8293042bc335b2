"""Windows Firewall: a PowerShell script using the NetSecurity cmdlets.

Windows has no rule order and evaluates block rules before allow rules, so the
script is allow rules on top of the default block. fwgen's rules live in the
group 'fwgen'. Their names begin with the script's generation, a hash of every
rule it creates: the script adds the rules of its generation that are missing,
sets the default block, and only then removes the rules of other generations. A
failure while adding removes what that run added and leaves the rules that were
there before; a second run of the same script adds and removes nothing.

Neighbour discovery needs no hop-limit match here: Windows' own IPv6 stack
discards neighbour discovery messages whose hop limit is not 255 (RFC 4861
sections 6.1, 7.1 and 8.1), so allowing the types is exactly what the Policy means.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fwgen.policy.ir import Policy, Rule
from fwgen.profile.fields import PORTLESS
from fwgen.profile.icmp import ICMP_TYPES, ICMPV6_TYPES
from fwgen.targets import Build, OutputFile, RenderOptions, refuse_what_the_platform_accepts
from fwgen.targets.text import empty_note, plain_ascii, rule_heading

GROUP = "fwgen"  # a constant: an empty -Group filter would select every rule
# The Group of Windows' Core Networking rules: an id, unlike the DisplayGroup, which
# is "Core Networking" only on an English Windows.
CORE_NETWORKING = "@FirewallAPI.dll,-25000"
GENERATION_DIGITS = 12
NAME_CHARS = 80  # of the rule's own name in -Name, before its hash
ANY_OF = {"ipv4": "0.0.0.0-255.255.255.255", "ipv6": "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}
PROTOCOL = {"tcp": "TCP", "udp": "UDP", "icmp": "ICMPv4", "icmpv6": "ICMPv6"} | {
    name: str(number)
    for name, number in PORTLESS.items()  # by number: 50, 51, 47
}
ADDRESSES_PER_RULE = 1000  # longer -RemoteAddress lists are split over several rules


def ps_string(text: str) -> str:
    """A single-quoted PowerShell string: quotes doubled, control characters replaced.

    PowerShell also ends single-quoted strings at the typographic quotes, so those
    are replaced too.
    """
    clean = "".join(
        "?" if not c.isprintable() or c in "\u2018\u2019\u201a\u201b" else c for c in text
    )
    return "'" + clean.replace("'", "''") + "'"


def ps_list(items: list[str]) -> str:
    return ",".join(ps_string(i) for i in items)


def _addresses(rule: Rule, policy: Policy) -> list[str]:
    addresses = policy.remote_addresses(rule)
    if addresses is not None:
        return addresses
    return [] if len(rule.families) == 2 else [ANY_OF[f] for f in rule.families]


def _rules(rule: Rule, policy: Policy, warnings: list[str]) -> list[dict[str, str]]:
    """One New-NetFirewallRule per chunk of remote addresses."""
    remote = _addresses(rule, policy)
    chunks = [remote[i : i + ADDRESSES_PER_RULE] for i in range(0, len(remote), ADDRESSES_PER_RULE)]
    return [
        _rule(rule, chunk, warnings if n == 0 else [], f"-{n + 1}" if len(chunks) > 1 else "")
        for n, chunk in enumerate(chunks or [[]])
    ]


def _identity(rule: Rule, params: dict[str, str]) -> str:
    """What the -Name's hash covers: the parameters, and what else tells rules apart.

    What the parameters do not show (the limit and the log Windows cannot express, the
    risk acknowledged) joins the hash only where a rule has it: the names of rules
    without any stay what they were when the parameters alone were hashed.
    """
    extra = {
        "Limit": str(rule.limit) if rule.limit else "",
        "Log": "yes" if rule.log else "",
        "AllowRisky": rule.acknowledged,
    }
    shown = sorted((k, v) for k, v in extra.items() if v)
    return repr(sorted(params.items())) + (repr(shown) if shown else "")


def _unique_names(rules: list[dict[str, str]]) -> None:
    """A second New-NetFirewallRule of a taken -Name (Windows ignores case) fails, and
    'Stop' ends the script there. Rules the hash cannot tell apart (a service and a
    literal port of one name, two networks of the same addresses) are numbered in the
    Policy's order, which does not depend on the order of the profile."""
    taken: set[str] = set()
    for rule in rules:
        base = rule.pop("wanted_name")
        name, n = base, 1
        while name.casefold() in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name.casefold())
        rule["name"] = name


def _generation(rules: list[dict[str, str]]) -> str:
    """Hex digits of a sha256 over every rule the script creates, as it creates them
    (names, texts, parameters): equal generations, equal rules. The profile's
    description and the header do not count."""
    text = json.dumps([GROUP, rules], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:GENERATION_DIGITS]


def _name_generation(rules: list[dict[str, str]]) -> str:
    """Give every rule its quoted -Name, 'fwgen-<generation>-<name>', and return the
    generation's -like pattern, quoted."""
    _unique_names(rules)
    generation = _generation(rules)
    for rule in rules:
        rule["name"] = ps_string(f"fwgen-{generation}-{rule['name']}")
    return ps_string(f"fwgen-{generation}-*")


def _description(rule: Rule) -> str:
    """What the rule is, true on Windows. A rule with a limit has its comment left out:
    written for the Policy, it may promise the limit ("echo request, rate limited"),
    which Windows Firewall cannot keep."""
    if rule.limit is None:
        text = rule.comment or rule.name
    else:
        text = (
            f"{rule.name}: not rate limited (Windows Firewall cannot apply the {rule.limit} limit)"
        )
    return f"{text}; from {rule.origin}"[:500]


def _rule(rule: Rule, remote: list[str], warnings: list[str], part: str) -> dict[str, str]:
    where = f"{rule.name} ({rule.origin})"
    if rule.limit is not None:
        warnings.append(
            f"{where}: Windows Firewall cannot rate-limit; the {rule.limit} limit is not applied"
        )
    params = {
        "Direction": "Inbound" if rule.direction == "in" else "Outbound",
        "Protocol": PROTOCOL[rule.proto],
    }
    if rule.ports:
        key = "LocalPort" if rule.direction == "in" else "RemotePort"
        params[key] = ps_list([str(p) for p in rule.ports])
    if rule.icmp_types:
        numbers = ICMP_TYPES if rule.proto == "icmp" else ICMPV6_TYPES
        params["IcmpType"] = ps_list([str(numbers[t]) for t in rule.icmp_types])
    if remote:
        params["RemoteAddress"] = ps_list(remote)
    if rule.local:
        params["LocalAddress"] = ps_list(list(rule.local))
    if rule.interfaces:  # Windows' wildcard is *, as in the Policy
        params["InterfaceAlias"] = ps_list(list(rule.interfaces))
    tag = hashlib.sha256(_identity(rule, params).encode()).hexdigest()[:10]
    name = f"{plain_ascii(rule.name, NAME_CHARS)}-{tag}{part}".replace(" ", "_")
    ports = " ".join(str(p) for p in rule.ports) or " ".join(rule.icmp_types)
    label = f"fwgen: {rule.name} ({' '.join(w for w in (rule.proto, ports) if w)})"
    return {
        "wanted_name": name,  # becomes "name", unique and quoted: see _name_generation
        "display": ps_string(label[:250]),
        "description": ps_string(_description(rule)),
        "params": " ".join(f"-{k} {v}" for k, v in params.items()),
    }


def build(policy: Policy, options: RenderOptions) -> Build:
    refuse_what_the_platform_accepts(
        policy,
        "windows",
        "Windows Firewall exempts loopback traffic and is stateful: replies always pass",
    )
    warnings: list[str] = []
    rules = []
    for rule in policy.rules:
        entry: dict[str, Any] = {
            "origin": rule_heading(rule),
            "rules": _rules(rule, policy, warnings) if rule.families else [],
            "note": empty_note(rule),
        }
        rules.append(entry)
    generation = _name_generation([r for entry in rules for r in entry["rules"]])
    log_allowed = any(r.log for r in policy.rules)
    if log_allowed:
        warnings.append(
            "Windows Firewall logs per profile, not per rule: allowed connections are logged for every rule"
        )
    if policy.defaults.forward == "accept":
        warnings.append(
            "forward: accept is not expressed; Windows Firewall does not filter routed traffic with these rules"
        )
    if policy.containers is not None:
        warnings.append(
            f"containers: {policy.containers} is not applicable: these rules do not govern "
            "the ports a container engine publishes through Windows' own NAT"
        )
    context = {
        "policy": policy,
        "group": ps_string(GROUP),
        "generation": generation,
        "core_networking": ps_string(CORE_NETWORKING),
        "rules": rules,
        "outbound": "Block" if policy.defaults.outbound == "drop" else "Allow",
        "log_allowed": "True" if log_allowed else "False",
        "log_blocked": "True" if policy.log_drops else "False",
        "exclusive": options.flush_ruleset,
    }
    # The two rules of ping (ICMP, ICMPv6) warn alike: say it once.
    unique = list(dict.fromkeys(warnings))
    return Build(files={"fwgen.ps1": OutputFile("apply.ps1.j2", context)}, warnings=unique)
