"""What a host needs to send and receive to keep its addresses and find its neighbours.

Written as ordinary profile rules, so that they resolve, render and show in ``explain``
like the author's own, located at the line that asks for them:

- ``options: {address: dhcp}``: the host takes its addresses from DHCP and DHCPv6.
  Replies are accepted in (a DHCP offer need not match the request conntrack saw);
  with outbound default-deny, requests may go out: DHCP to port 67 of any address
  (broadcast, then the server that gave the lease), DHCPv6 to port 547 of the
  link's servers' group ff02::1:2 (RFC 8415).
- An inbound rule for a multicast service on the local link (mDNS, LLMNR, SSDP) asks
  for a conversation on its groups: with outbound default-deny, this host may also
  send to those groups (UDP only), unless an outbound rule names the service itself.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from fwgen.profile.load import Located
from fwgen.profile.models import InboundRule, OutboundRule
from fwgen.profile.portdb import Catalogue

ALL_DHCP_SERVERS = "ff02::1:2"  # All_DHCP_Relay_Agents_and_Servers (RFC 8415)


def dhcp_rules(
    where: Located[Any], outbound_deny: bool
) -> list[Located[InboundRule] | Located[OutboundRule]]:
    """The rules ``address: dhcp`` stands for, located at that option."""
    inbound = [
        InboundRule(service=["dhcp-client"], comment="DHCP replies (address: dhcp)"),
        InboundRule.model_validate(
            {
                "service": "dhcpv6-client",
                "from": ["fe80::/10"],  # DHCPv6 servers answer from their link-local address
                "comment": "DHCPv6 replies from the link (address: dhcp)",
            }
        ),
    ]
    outbound = [
        OutboundRule(service=["dhcp"], comment="DHCP requests (address: dhcp)"),
        OutboundRule(
            service=["dhcpv6"],
            to=[ALL_DHCP_SERVERS],
            comment="DHCPv6 requests to the servers of the link (address: dhcp)",
        ),
    ]
    located: list[Located[InboundRule] | Located[OutboundRule]] = [
        Located(rule, where.doc, where.loc) for rule in inbound
    ]
    if outbound_deny:
        located += [Located(rule, where.doc, where.loc) for rule in outbound]
    return located


def multicast_replies(
    inbound: list[Located[InboundRule]], outbound: list[Located[OutboundRule]], ports: Catalogue
) -> list[Located[OutboundRule]]:
    """For each inbound rule of a local multicast service, the rule that lets this host
    send to the service's groups, located at the inbound rule (for outbound deny)."""
    named = {name for loc in outbound for name in loc.value.service}
    out = []
    for loc in inbound:
        for name in loc.value.service:
            service = ports.get(name)
            if service is None or service.name in named or not _multicast(service.destinations):
                continue
            named.add(service.name)
            rule = OutboundRule(
                service=[service.name],
                to=list(service.destinations),
                comment=f"{service.title} to its groups: this host asks and answers too",
            )
            out.append(Located(rule, loc.doc, loc.loc))
    return out


def _multicast(addresses: tuple[str, ...]) -> bool:
    return bool(addresses) and all(ipaddress.ip_address(a).is_multicast for a in addresses)
