"""A rule's ``accept:`` as written: the findings of `fwgen check` it accepts, each by code
and by the service it is about, with why (`fwgen.policy.accepted` resolves it against the
port database), so that accepting FTP's cleartext finding leaves telnet's standing."""

from __future__ import annotations

from typing import Any

from fwgen.profile.codes import refuse_accepting
from fwgen.profile.fields import SERVICE_RE, check_text


def parse_accept(value: Any, opened: list[str]) -> dict[str, str | dict[str, str]]:
    """A rule's ``accept:`` as written, checked: ``{CODE: {SERVICE: reason}}``, each finding
    accepted for the services it names, with why; or ``{CODE: reason}`` where that can mean
    one thing only, a rule of one service or one port (*opened*: its services and ports)."""
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
