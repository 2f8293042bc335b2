"""What a Rule accepts of `fwgen check`'s findings, by code and by the service it is
about, resolved against the port database (a rule's ``accept:`` as written is checked by
`fwgen.profile.accept`)."""

from __future__ import annotations

from collections.abc import Mapping

from fwgen.errors import did_you_mean
from fwgen.profile.portdb import Catalogue
from fwgen.profile.services import Service

# (code, service, why): service "" accepts the code for whatever the rule opens (a rule of
# one port, or an ICMP rule).
Accepted = tuple[tuple[str, str, str], ...]


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
