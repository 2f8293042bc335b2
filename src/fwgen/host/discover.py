"""Draft a profile from the services listening on a host (`ss -tulpnH`, read by
`fwgen.host.observed`), each rule named and annotated from the port database."""

from __future__ import annotations

import re
from collections import Counter

import yaml

from fwgen.host.audit import port_service, serves
from fwgen.host.observed import Observed, loopback
from fwgen.profile.portdb import Catalogue
from fwgen.profile.services import Service
from fwgen.read.yamlsource import check_text


def _rule_name(text: str) -> str:
    """A rule name from a program's name: at most 36 characters (room for ``-PORT-PROTO``
    within the 48 a name may have), starting with a letter or digit."""
    name = re.sub(r"[^A-Za-z0-9_.+-]", "-", text).strip("-.+_")[:36].rstrip("-.+_")
    return name if name and name[0].isalnum() else f"port-{name}".strip("-")


def _yaml_name(name: str) -> str:
    """*name* as YAML reads it back as that text: quoted where YAML would read a number,
    a boolean or null (``123``, ``yes``, ``null``, ``0x1f``). Names hold no quotes."""
    return name if yaml.safe_load(name) == name else f"'{name}'"


def _draft_rule(
    obs: Observed, service: Service | None, name: str, others: list[str]
) -> tuple[list[str], bool]:
    """The draft's lines for one listener, and whether they need the `lan` network.

    The port database names the rule when the program listening is what usually serves
    that port, or when ``ss`` did not say; otherwise the rule is *name* (after the program)
    and the comment says what the port database would call the port, and the *others*
    entries that name it too.
    """
    port = f"{obs.port}/{obs.proto}"
    if service is None:
        return [
            f"  - port: {port}",
            f"    name: {_yaml_name(name)}  # not in the port database",
        ], False
    note = f"{service.title}: risk {service.risk}, exposure {service.exposure}"
    note += f"; {port} is also {', '.join(others)}" if others else ""
    if service.exposure == "never":
        who = f"{obs.process} listens; " if obs.process else ""
        return [
            f"  # - port: {port}  # {who}{service.name} ({note}): a known backdoor port; "
            "investigate, do not open without an allow_risky reason"
        ], False
    if serves(service, obs.process):
        head = [f"  - service: {service.name}  # {note}"]
    else:
        head = [
            f"  - port: {port}",
            f"    name: {_yaml_name(name)}  # {obs.process} listens; the port database calls {port} {service.name} ({note})",
        ]
    lan = service.exposure == "lan-only"
    return head + (["    from: lan"] if lan else []), lan


def _port_rule_names(listeners: list[Observed]) -> dict[Observed, str]:
    """A rule name per listener: the program's name, with the port (and protocol) added
    where one program listens on several ports, so that names stay unique."""
    base = {obs: _rule_name(obs.process or f"port-{obs.port}") for obs in listeners}
    count = Counter(base.values())
    named = {obs: f"{b}-{obs.port}" if count[b] > 1 else b for obs, b in base.items()}
    again = Counter(named.values())
    return {obs: f"{n}-{obs.proto}" if again[n] > 1 else n for obs, n in named.items()}


def discover(listeners: list[Observed], ports: Catalogue) -> str:
    """A draft profile: one inbound rule per non-loopback listener, annotated from the port database."""
    seen: dict[tuple[str, int], Observed] = {}
    for obs in listeners:
        if not loopback(obs.address):
            seen.setdefault((obs.proto, obs.port), obs)
    drafted: list[tuple[Observed, Service | None]] = []
    services_done: set[str] = set()
    for (proto, port), obs in sorted(seen.items(), key=lambda item: (item[0][1], item[0][0])):
        service = port_service(ports, proto, port, obs.process)
        if service is not None and service.exposure != "never" and serves(service, obs.process):
            if service.name in services_done:
                continue
            services_done.add(service.name)
        drafted.append((obs, service))
    names = _port_rule_names(
        [obs for obs, service in drafted if service is None or not serves(service, obs.process)]
    )
    entries: list[str] = []
    needs_lan = False
    for obs, service in drafted:
        others = [s.name for s in ports.named_at(obs.port, obs.port, obs.proto) if s != service]
        rule, lan = _draft_rule(obs, service, names.get(obs, ""), others)
        entries += rule
        needs_lan = needs_lan or lan
    lines = [
        "# Drafted by `fwgen discover` from the services listening on a host.",
        "# Review every rule: a listener is not a reason to open a port.",
        "description: Drafted from the services listening on this host",
        "extends: base",
    ]
    if needs_lan:
        lines += [
            "networks:",
            "  lan: []  # fill in the networks that may reach LAN-only services, e.g. [192.0.2.0/24]",
        ]
    lines += ["inbound:" if entries else "inbound: []", *entries]
    return check_text("\n".join(lines) + "\n", "the draft")
