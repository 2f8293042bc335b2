"""The codes of `fwgen check`'s findings: each with its level and what it means. They are
stable (SARIF lists them as rules), and a rule's ``accept:`` names them, so the profile
models check them too."""

from __future__ import annotations

from typing import Literal

from fwgen.errors import did_you_mean

Level = Literal["error", "warning", "info"]
REMOTE_MANAGEMENT = ("ssh", "ssh-alt", "rdp", "winrm", "winrm-https")

# code: (level, short description) — the codes are stable; SARIF lists them as rules.
CODES: dict[str, tuple[Level, str]] = {
    "FW001": ("error", "A known backdoor or trojan port is opened"),
    "FW002": ("warning", "A LAN-only service is reachable from any address or a public range"),
    "FW003": ("warning", "A cleartext service is opened where a safer one exists"),
    "FW004": ("info", "A high-risk service is opened"),
    "FW005": ("warning", "A critical-risk service is opened"),
    "FW006": ("warning", "No remote-management service is reachable on a server profile"),
    "FW007": ("warning", "A rule is shadowed by or duplicates another rule"),
    "FW008": ("warning", "A rule's address set is empty, so it matches nothing"),
    "FW009": ("warning", "Outbound is default-deny but DNS is not allowed out"),
    "FW010": ("info", "A cleartext service is opened beside its safer replacement"),
    "FW011": ("warning", "An address list adds up to every address of a family"),
    "FW012": ("warning", "A rule admits only documentation addresses (placeholders)"),
    "FW014": (
        "warning",
        "Outbound is default-deny but DHCP is not allowed out (address not static)",
    ),
    "FW015": (
        "warning",
        "Forwarding is ignored without `containers:`: published container ports bypass inbound",
    ),
    "FW016": ("warning", "IPv6 neighbour discovery is not accepted: the host loses its neighbours"),
    "FW017": ("warning", "established: false drops the replies to this host's own connections"),
    "FW018": ("warning", "loopback: false drops what programs on this host send each other"),
    "FW019": ("warning", "A rule's interface group is empty, so it matches nothing"),
    "FW020": ("warning", "A rule is on an interface the profile names nowhere else"),
}
# About the whole profile, not one rule
HOST_CODES = ("FW006", "FW009", "FW011", "FW014", "FW015", "FW016", "FW017", "FW018")


def acceptable_codes() -> list[str]:
    """The codes a rule's ``accept:`` may name (`refuse_accepting` refuses the others)."""
    return [code for code in CODES if code != "FW001" and code not in HOST_CODES]


def refuse_accepting(code: str) -> None:
    """A ValueError when a rule's ``accept:`` names *code*, which it cannot accept."""
    if code not in CODES:
        raise ValueError(f"unknown finding code '{code}'{did_you_mean(code, CODES)}")
    if code == "FW001":
        raise ValueError(
            'a backdoor port (FW001) is acknowledged with `allow_risky: "why"` on the rule, '
            "not with accept"
        )
    if code in HOST_CODES:
        raise ValueError(
            f"finding {code} is about the whole profile, not one rule; it cannot be accepted here"
        )
