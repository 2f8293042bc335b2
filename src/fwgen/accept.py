"""What a rule's ``accept:`` accepts: findings of `fwgen check`, each by code and by the
service it is about, so that accepting FTP's cleartext finding leaves telnet's standing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fwgen.errors import did_you_mean
from fwgen.portdb import Catalogue, Service
from fwgen.profile import SERVICE_RE, check_text

# (code, service, why): service "" accepts the code for whatever the rule opens (a rule of
# one port, or an ICMP rule).
Accepted = tuple[tuple[str, str, str], ...]


def parse_accept(value: Any, opened: list[str]) -> dict[str, str | dict[str, str]]:
    """A rule's ``accept:`` as written, checked: ``{CODE: {SERVICE: reason}}``, each finding
    accepted for the services it names, with why; or ``{CODE: reason}`` where that can mean
    one thing only, a rule of one service or one port (*opened*: its services and ports)."""
    from fwgen.check import refuse_accepting

    if not isinstance(value, dict):
        raise ValueError(
            "write accept: {CODE: {SERVICE: reason}}, e.g. {FW003: {ftp: why it is "
            "acceptable here}}"
        )
    for code, reason in value.items():
        refuse_accepting(str(code))
        reasons = reason if isinstance(reason, dict) else {"": reason}
        if not reasons:
            raise ValueError(f"no service named for {code}: name one and why, or leave {code} out")
        for service, why in reasons.items():
            if not isinstance(why, str) or not why.strip():
                raise ValueError(f"accepting {code} needs a reason: say why it is acceptable here")
            check_text(why, f"the reason for {code}")
            if service and not SERVICE_RE.fullmatch(str(service).lower()):
                raise ValueError(f"accept: {code}: invalid service name {service!r}")
        if not isinstance(reason, dict) and _several(opened):
            raise ValueError(
                f"one reason for {code} would accept it for everything this rule opens "
                f"({', '.join(map(str, opened))}); name the service it is accepted for: "
                f"accept: {{{code}: {{SERVICE: why}}}}"
            )
    return {
        code: {str(s).lower(): why for s, why in reason.items()}
        if isinstance(reason, dict)
        else reason
        for code, reason in value.items()
    }


def _several(opened: list[str]) -> bool:
    """Whether a rule opening *opened* (service names and port texts) may open more than one
    service: two names or ports, or a port range."""
    return len(opened) > 1 or any("-" in text for text in opened if "/" in text)


def accepted_for(
    accept: Mapping[str, str | Mapping[str, str]],
    rule_services: list[Service],
    opened: Service | None,
    ports: Catalogue,
) -> Accepted:
    """What the Rule of *opened* (None: a port or ICMP rule) accepts, of a rule written with
    *rule_services*. A ValueError names a service the rule does not open or that is unknown."""
    out = []
    for code, reason in accept.items():
        if isinstance(reason, str):  # one service or one port: the profile model made sure
            out.append((code, opened.name if opened else "", reason))
            continue
        for name, why in reason.items():
            found = ports.get(name)
            if found is None:
                raise ValueError(
                    f"{code}: unknown service '{name}'{did_you_mean(name, ports.names())}"
                )
            names = [s.name for s in rule_services]
            if names and found.name not in names:
                raise ValueError(
                    f"{code}: this rule does not open '{name}'; name one of its services "
                    f"({', '.join(names)})"
                )
            if opened is None or found.name == opened.name:
                out.append((code, found.name, why))
    return tuple(sorted(out))


def reason_for(accepted: Accepted, code: str, service: str | None) -> str | None:
    """Why a finding (its code, and the service it is about, if any) is accepted; None when
    it is not."""
    for accepted_code, accepted_service, why in accepted:
        if accepted_code == code and (service is None or accepted_service in ("", service)):
            return why
    return None
