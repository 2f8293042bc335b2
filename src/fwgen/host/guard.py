"""The lock-out guard: would the new Policy still let the admin open a new connection?

An established connection survives a reload (the rules accept established traffic),
so the question is whether a *new* one gets in: the next ``ssh`` after a dropped
session, or the one that confirms the change. The admin's connection comes from
``SSH_CONNECTION`` (``client_ip client_port server_ip server_port``) and from
``--keep ADDR[:PORT]``; the Policy is evaluated, not the rendered text.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from fwgen.errors import FwgenError, printable
from fwgen.policy.denies import VERBS
from fwgen.policy.ir import Family, Policy, Rule

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SSH_PORT = 22


@dataclass(frozen=True)
class Connection:
    """A new TCP connection the new rules must admit."""

    client: IPAddress
    port: int
    server: IPAddress | None
    source: str  # where it came from: "SSH_CONNECTION", "--keep ...", ...
    client_port: int | None = None  # known for a live connection (SSH_CONNECTION, sshd's)

    @property
    def session(self) -> str:
        """The connection as SSH_CONNECTION writes it ("" when its client port is unknown)."""
        if self.client_port is None or self.server is None:
            return ""
        return f"{self.client} {self.client_port} {self.server} {self.port}"

    @property
    def family(self) -> Family:
        return "ipv4" if self.client.version == 4 else "ipv6"

    def __str__(self) -> str:
        return f"a new connection from {self.client} to port {self.port}/tcp ({self.source})"


def _address(text: str, what: str) -> IPAddress:
    """An address as sshd or a user writes it: zone ids dropped, IPv4-mapped IPv6 unwrapped."""
    try:
        address = ipaddress.ip_address(text.strip().strip("[]").partition("%")[0])
    except ValueError:
        raise FwgenError(f"{what}: {printable(text)!r} is not an IP address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _port(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise FwgenError(f"{what}: {printable(text)!r} is not a port number (1-65535)")
    return int(text)


def from_ssh(value: str, what: str = "SSH_CONNECTION") -> Connection:
    """``SSH_CONNECTION``'s four fields → the connection it describes."""
    fields = value.split()
    if len(fields) != 4:
        raise FwgenError(
            f"{what} {printable(value)!r}: expected 'client_ip client_port server_ip server_port'"
        )
    return Connection(
        _address(fields[0], what),
        _port(fields[3], what),
        _address(fields[2], what),
        what,
        _port(fields[1], what),
    )


def from_keep(value: str) -> Connection:
    """``--keep ADDR[:PORT]`` (``[v6]:PORT`` for IPv6 with a port); the port defaults to 22."""
    what = f"--keep {printable(value)}"
    text, port = value.strip(), str(SSH_PORT)
    if text.startswith("["):
        if "]" not in text:
            raise FwgenError(f"{what}: write ADDR, ADDR:PORT or [IPV6]:PORT")
        text, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise FwgenError(f"{what}: write ADDR, ADDR:PORT or [IPV6]:PORT")
            port = rest[1:]
    elif text.count(":") == 1:
        text, port = text.split(":")
    return Connection(_address(text, what), _port(port, what), None, what)


def connections(environ: Mapping[str, str], keep: list[str]) -> list[Connection]:
    """The connections to protect: the SSH session fwgen runs in, and every ``--keep``."""
    found = [from_ssh(environ["SSH_CONNECTION"])] if environ.get("SSH_CONNECTION") else []
    return found + [from_keep(value) for value in keep]


def _in(address: IPAddress, networks: tuple[str, ...] | list[str]) -> bool:
    return any(address in ipaddress.ip_network(n, strict=False) for n in networks)


def _opens_port(rule: Rule, connection: Connection) -> bool:
    """Whether *rule* admits the connection's first packet. A rule limited to interfaces
    never does here: which interface the connection arrives on is not known (a route may
    change it), so it cannot be credited with keeping the admin in."""
    return (
        rule.proto == "tcp" and not rule.interfaces and not rule.on and _reaches(rule, connection)
    )


def _reaches(rule: Rule, connection: Connection) -> bool:
    """Whether *rule* matches the connection's packets in, its protocol and interfaces aside."""
    return (
        rule.direction == "in"
        and connection.family in rule.families
        and (not rule.ports or any(r.start <= connection.port <= r.end for r in rule.ports))
        and (
            not rule.local_of(connection.family)
            or connection.server is None
            or _in(connection.server, rule.local_of(connection.family))
        )
    )


def _from_client(policy: Policy, rule: Rule, connection: Connection) -> bool:
    if rule.remote is None:
        return True
    client = int(connection.client)  # a blocklist of a million entries is parsed never again
    return policy.address_set(rule.remote).runs(connection.family).holds(client, client)


def admitting_rule(policy: Policy, connection: Connection) -> Rule | None:
    """The first inbound rule that accepts *connection* as a new connection, or None."""
    return next(
        (
            r
            for r in policy.rules
            if _opens_port(r, connection) and _from_client(policy, r, connection)
        ),
        None,
    )


EPHEMERAL = (1024, 65535)  # where a client's port may be when it is not known


def _lets_replies_out(policy: Policy, rule: Rule, connection: Connection) -> bool:
    """*rule* lets every reply of *connection* out (server port → client port)."""
    start, end = (connection.client_port,) * 2 if connection.client_port else EPHEMERAL
    return (
        rule.direction == "out"
        and rule.proto == "tcp"
        and not rule.on  # which interface the replies leave by is not known
        and rule.limit is None  # a limited rule admits new connections only
        and connection.family in rule.families
        and (not rule.ports or any(r.start <= start and end <= r.end for r in rule.ports))
        and (
            not rule.local_of(connection.family)
            or (
                connection.server is not None
                and _in(connection.server, rule.local_of(connection.family))
            )
        )
        and _from_client(policy, rule, connection)
    )


def connection_gap(policy: Policy, connection: Connection) -> str:
    """What keeps an admitted first packet of *connection* from becoming a working
    connection ("" when nothing does). With the established shortcut every later packet
    and every reply passes; without it (`established: false`) each needs a rule: a
    rate-limited rule matches new connections only (its SYN), and outbound deny drops
    the replies unless an outbound rule lets them out."""
    if policy.established:
        return ""
    needed = "or `options: {established: true}`"
    if not any(
        r.limit is None and _opens_port(r, connection) and _from_client(policy, r, connection)
        for r in policy.rules
    ):
        rule = admitting_rule(policy, connection)
        assert rule is not None
        return (
            f"with `established: false` only its first packet gets in: rule '{rule.name}' "
            f"({rule.origin}) has a limit, which admits new connections only; needed: a rule "
            f"without a limit for {connection.port}/tcp from {connection.client} {needed}"
        )
    if policy.defaults.outbound == "drop" and not any(
        _lets_replies_out(policy, r, connection) for r in policy.rules
    ):
        return (
            f"with `established: false` and outbound deny, its replies (from port "
            f"{connection.port}/tcp) are not let out; needed: an outbound rule for tcp to "
            f"{connection.client} on the client's ports {needed}"
        )
    return ""


def refusal(policy: Policy, connection: Connection) -> str:
    """Why *connection* would be cut off, and the rule that would let it in."""
    needed = f"an inbound rule for {connection.port}/tcp from {connection.client}"
    near = [r for r in policy.rules if _opens_port(r, connection) and r.remote]
    if near and near[0].remote:
        rule, remote = near[0], near[0].remote
        if policy.address_set(remote).origin == rule.origin:  # written in the rule's `from:`
            needed = f"{connection.client} in the `from:` of rule '{rule.name}' ({rule.origin})"
        else:
            needed = (
                f"{connection.client} in network '{remote}', which rule '{rule.name}' "
                f"({rule.origin}) admits to port {connection.port}/tcp "
                f"(e.g. --set {remote}=...,{connection.client})"
            )
    on = [
        r
        for r in policy.rules
        if r.on
        and _opens_port(r.replace(interfaces=(), on=()), connection)
        and _from_client(policy, r, connection)
    ]
    if on:
        needed += (
            f" on every interface: rule '{on[0].name}' ({on[0].origin}) admits it only"
            f"{on[0].on_words()}, and the guard never counts a rule limited to interfaces "
            "(it cannot tell which interface the connection arrives on)"
        )
    return f"the new rules would cut off {connection}; needed: {needed}"


def blocking_deny(policy: Policy, connection: Connection) -> Rule | None:
    """The deny or reject rule that refuses *connection*, evaluated before every allow.
    One limited to interfaces counts: the connection may well arrive on one of them."""
    return next(
        (
            r
            for r in policy.denies
            if r.proto in ("tcp", "all")
            and _reaches(r, connection)
            and _from_client(policy, r, connection)
        ),
        None,
    )


def lockouts(policy: Policy, found: list[Connection]) -> list[str]:
    """One message per connection the new Policy would not admit, or admit but not carry."""
    messages = []
    for connection in found:
        if deny := blocking_deny(policy, connection):
            messages.append(
                f"the new rules would cut off {connection}: the {VERBS[deny.action]} rule '{deny.name}' "
                f"({deny.origin}) refuses its new connections (the one open now survives, "
                "a reconnection does not); narrow that rule"
            )
        elif admitting_rule(policy, connection) is None:
            messages.append(refusal(policy, connection))
        elif gap := connection_gap(policy, connection):
            messages.append(f"the new rules would cut off {connection}: {gap}")
    return messages
