from __future__ import annotations

import json
import re
import socket
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fwgen.cli.app import app
from fwgen.errors import FwgenError
from fwgen.policy.resolve import resolve_profile
from fwgen.profile import portdb
from fwgen.profile.fields import PORTLESS
from fwgen.profile.portdb import catalogue
from fwgen.profile.portquery import BROAD_MARKER, DOCUMENTS, query, split_source

runner = CliRunner()
HELPERS = {"ftp", "tftp", "sip", "h323", "pptp", "irc", "amanda", "snmp", "netbios-ns", "sane"}


def ports_json(*args: str) -> list[dict[str, object]]:
    result = runner.invoke(app, ["ports", *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout))


# -------------------------------------------------------------- integrity


def test_catalogue_has_at_least_250_services() -> None:
    assert len(catalogue().services) >= 250


def test_names_and_aliases_are_unique_across_the_catalogue() -> None:
    counts = Counter(n for s in catalogue().services for n in (s.name, *s.aliases))
    assert [name for name, n in counts.items() if n > 1] == []


def test_every_entry_is_complete_and_consistent() -> None:
    cat = catalogue()
    for s in cat.services:
        assert s.ports, s.name
        for p in s.ports:
            if p.proto in PORTLESS:  # a protocol without ports: esp, ah, gre
                assert p.start == p.end == 0, s.name
            else:
                assert 1 <= p.start <= p.end <= 65535, s.name
        assert s.risk in ("low", "medium", "high", "critical"), s.name
        assert s.exposure in ("public", "lan-only", "never"), s.name
        assert s.title and s.category, s.name
        if s.risk in ("high", "critical"):
            assert s.risk_notes, f"{s.name}: high risk needs risk_notes saying why"
        if s.alternative:
            assert cat.get(s.alternative) is not None, f"{s.name}: unknown alternative"
        if s.helper:
            assert s.helper in HELPERS, s.name
        assert (s.exposure == "never") == (s.category == "malware"), s.name
        if s.exposure == "never":
            assert s.risk == "critical", s.name
        documents = [split_source(text)[0] for text in s.sources]
        assert set(documents) <= set(DOCUMENTS), f"{s.name}: unknown document in sources"
        assert len(set(documents)) == len(documents), f"{s.name}: a document named twice"


@pytest.mark.parametrize(
    ("name", "ports"),
    [
        ("rexec", ["512/tcp"]),
        ("biff", ["512/udp"]),
        ("rlogin", ["513/tcp"]),
        ("who", ["513/udp"]),
        ("rsh", ["514/tcp"]),
        ("syslog", ["514/udp"]),
        ("x11", ["6000-6063/tcp"]),
        ("dns", ["53/udp", "53/tcp"]),
        ("netbios", ["137-138/udp", "139/tcp"]),
        ("mysql", ["3306/tcp"]),
        ("minecraft", ["25565/tcp"]),
        ("source-engine", ["27015/udp", "27015/tcp"]),
        ("metasploit", ["4444/tcp"]),
        ("bagle", ["2745/tcp", "8866/tcp"]),
        ("netbus-pro", ["20034/tcp", "20123-20124/tcp"]),
        ("radsec", ["2083/tcp", "2083/udp"]),
        ("netsky", ["26/tcp"]),
        ("trojans-2525", ["2525/tcp"]),
        ("tcpmux", ["1/tcp"]),
        ("netbios-ns-tcp", ["137/tcp"]),
    ],
)
def test_well_known_ports(name: str, ports: list[str]) -> None:
    service = catalogue().get(name)
    assert service is not None
    assert [str(p) for p in service.ports] == ports


def test_classic_reference_services_are_covered() -> None:
    cat = catalogue()
    for name in [
        "ftp",
        "ssh",
        "telnet",
        "smtp",
        "time",
        "dns",
        "dhcp",
        "dhcp-client",
        "tftp",
        "finger",
        "http",
        "linuxconf",
        "kerberos",
        "pop2",
        "pop3",
        "portmapper",
        "ident",
        "nntp",
        "ntp",
        "msrpc",
        "netbios",
        "imap",
        "snmp",
        "snmptrap",
        "xdmcp",
        "bgp",
        "ldap",
        "ldaps",
        "https",
        "smb",
        "submissions",
        "isakmp",
        "rexec",
        "rlogin",
        "rsh",
        "syslog",
        "lpd",
        "submission",
        "ipp",
        "mountd",
        "swat",
        "imaps",
        "pop3s",
        "ftps",
        "socks",
        "mssql",
        "pptp",
        "nfs",
        "squid",
        "mysql",
        "rdp",
        "postgresql",
        "x11",
        "irc",
        "xfs",
        "http-8000",
        "http-alt",
        "webmin",
        "cpanel",
        "whm",
        "minecraft",
        "source-engine",
        "steam",
        "back-orifice",
        "subseven",
        "netbus",
        "metasploit",
        "sasser",
        "dabber",
        "bagle",
    ]:
        assert cat.get(name) is not None, name


@pytest.mark.parametrize(
    ("port", "name"),
    [
        (31337, "back-orifice"),
        (1243, "subseven"),
        (27374, "subseven"),
        (12345, "netbus"),
        (12346, "netbus"),
        (4444, "metasploit"),
        (5554, "sasser"),
        (9898, "dabber"),
        (2745, "bagle"),
        (8866, "bagle"),
        (20123, "netbus-pro"),
        (26, "netsky"),
        (2525, "trojans-2525"),
        (9988, "trojans-9988"),
        (1080, "socks-backdoors"),
    ],
)
def test_backdoor_ports_are_never(port: int, name: str) -> None:
    found = query(catalogue(), str(port))
    assert (found[0]["name"], found[0]["exposure"]) == (name, "never")
    assert all(e["exposure"] != "never" for e in found[1:])


def test_safer_alternatives() -> None:
    cat = catalogue()
    pairs = {
        name: cat.require(name).alternative
        for name in ("telnet", "ftp", "pop3", "imap", "rsh", "rlogin", "rexec")
    }
    assert pairs == {
        "telnet": "ssh",
        "ftp": "sftp",
        "pop3": "pop3s",
        "imap": "imaps",
        "rsh": "ssh",
        "rlogin": "ssh",
        "rexec": "ssh",
    }
    assert cat.require("sftp").name == "ssh"


# -------------------------------------------------------------- queries (the CLI)


def test_query_by_number_json_shows_never() -> None:
    entry = ports_json("31337")[0]
    assert entry["name"] == "back-orifice" and entry["exposure"] == "never"
    assert set(entry) >= {
        "name",
        "title",
        "aliases",
        "ports",
        "risk",
        "exposure",
        "alternative",
        "category",
    }
    assert {"proto": "tcp", "start": 31337, "end": 31337} in entry["ports"]  # type: ignore[operator]


def test_query_by_number_mysql_is_lan_only() -> None:
    (entry,) = ports_json("3306")
    assert (entry["name"], entry["exposure"]) == ("mysql", "lan-only")


def test_query_by_number_and_protocol_tells_services_apart() -> None:
    udp = runner.invoke(app, ["ports", "514/udp"])
    tcp = runner.invoke(app, ["ports", "514/tcp"])
    assert [line.split()[0] for line in udp.stdout.splitlines()[1:]] == ["syslog"]
    assert [line.split()[0] for line in tcp.stdout.splitlines()[1:]] == ["rsh"]
    assert "shell" in tcp.stdout


def test_a_port_in_a_backdoor_range_names_the_backdoor_first() -> None:
    result = runner.invoke(app, ["ports", "3150/tcp"])
    assert [line.split()[0] for line in result.stdout.splitlines()[1:]] == ["mydoom"]
    assert [e["name"] for e in ports_json("3128")] == ["mydoom", "squid"]
    assert [e["name"] for e in ports_json("1080")] == ["socks-backdoors", "socks"]


NEVER_PORTS = sorted(
    {
        (service.name, port, p.proto)
        for service in catalogue().services
        if service.exposure == "never"
        for p in service.ports
        for port in {p.start, (p.start + p.end) // 2, p.end}
    }
)


@pytest.mark.parametrize(("name", "port", "proto"), NEVER_PORTS)
def test_every_port_of_a_backdoor_range_is_named_and_refused(
    name: str, port: int, proto: str, write_profile: Callable[..., Path]
) -> None:
    cat = catalogue()
    named = cat.named_at(port, port, proto)
    assert named[0].exposure == "never" and name in [s.name for s in named]
    found = query(cat, f"{port}/{proto}")
    assert name in [e["name"] for e in found if not e["broad"]]
    profile = write_profile(f"description: x\ninbound:\n  - {{port: {port}/{proto}, name: x}}\n")
    result = runner.invoke(app, ["render", str(profile), "-t", "nftables"])
    assert result.exit_code == 2
    assert f"x opens {name} (" in result.stderr and "a known backdoor port" in result.stderr


def test_broad_ranges_are_listed_after_a_marker() -> None:
    lines = runner.invoke(app, ["ports", "31337"]).stdout.splitlines()
    assert [line.split()[0] for line in lines] == [
        "NAME",
        "back-orifice",
        "--",
        "kubernetes-nodeports",
    ]
    assert lines[2] == BROAD_MARKER
    lines = runner.invoke(app, ["ports", "15000/udp"]).stdout.splitlines()
    assert lines[1:] == [BROAD_MARKER, lines[2]] and lines[2].startswith("rtp ")
    assert [(e["name"], e["broad"]) for e in ports_json("10000/udp")] == [("rtp", True)]
    names = [(e["name"], e["broad"]) for e in ports_json("10000")]
    assert names == [("ndmp", False), ("webmin", False), ("rtp", True)]
    # a query for a range lists what names ports in it, then the broad ranges it overlaps
    assert [e["name"] for e in ports_json("30000-30010/tcp")] == ["kubernetes-nodeports"]
    assert runner.invoke(app, ["ports", "6000-6010"]).stdout.count("--") == 0


def test_source_shows_the_reference_documents() -> None:
    (entry,) = ports_json("445")
    assert entry["sources"] == [
        {
            "document": "farrow",
            "title": DOCUMENTS["farrow"],
            "note": "lists 445 as LDAP; 445 is SMB over TCP (microsoft-ds), LDAP is 389",
        },
        {
            "document": "firewalld",
            "title": DOCUMENTS["firewalld"],
            "note": "samba also opens NetBIOS (137-138/udp, 139/tcp); here that is the netbios "
            "entry, for the old clients that still need it",
        },
    ]
    out = runner.invoke(app, ["ports", "445", "--source"]).stdout.splitlines()
    assert out[0].split() == [
        "NAME",
        "PORTS",
        "RISK",
        "EXPOSURE",
        "CATEGORY",
        "SOURCES",
        "TITLE",
    ]
    assert out[1].split()[:7] == [
        "smb",
        "445/tcp",
        "critical",
        "lan-only",
        "file-sharing",
        "farrow,",
        "firewalld",
    ]
    assert out[2:] == [
        "",
        "sources:",
        f"  farrow     {DOCUMENTS['farrow']}",
        f"  firewalld  {DOCUMENTS['firewalld']}",
        "notes:",
        "  smb: farrow: lists 445 as LDAP; 445 is SMB over TCP (microsoft-ds), LDAP is 389",
        "  smb: firewalld: samba also opens NetBIOS (137-138/udp, 139/tcp); here that is the "
        "netbios entry, for the old clients that still need it",
    ]
    plain = runner.invoke(app, ["ports", "445"]).stdout
    assert "farrow" not in plain and "SOURCES" not in plain
    (entry,) = ports_json("jupyter")
    assert entry["sources"] == []
    assert "  -  " in runner.invoke(app, ["ports", "jupyter", "--source"]).stdout


def test_query_by_alias_resolves_to_the_service() -> None:
    assert [e["name"] for e in ports_json("www")] == ["http"]
    assert [e["name"] for e in ports_json("pop-3")] == ["pop3"]
    assert [e["name"] for e in ports_json("smtps")] == ["submissions"]


def test_query_by_range_finds_overlapping_services() -> None:
    assert [e["name"] for e in ports_json("6000-6010")] == ["x11"]
    names = [e["name"] for e in ports_json("5900-5901/tcp")]
    assert names == ["vnc"]


def test_query_by_words_searches_titles_and_descriptions() -> None:
    names = {e["name"] for e in ports_json("mail")}
    assert {"smtp", "submission", "imaps", "pop3s"} <= names
    assert "ssh" not in names
    assert "rsh" in [e["name"] for e in ports_json("remote shell")]


def test_no_query_lists_everything() -> None:
    assert len(ports_json()) == len(catalogue().services) >= 250


def test_no_match_exits_1_and_bad_range_exits_2() -> None:
    result = runner.invoke(app, ["ports", "no-such-thing"])
    assert result.exit_code == 1
    assert "no service matches" in result.stderr
    result = runner.invoke(app, ["ports", "80-20"])
    assert result.exit_code == 2


def test_unknown_port_falls_back_to_the_system_database(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake(port: int, proto: str) -> str:
        if (port, proto) == (47001, "tcp"):
            return "madeup-svc"
        raise OSError("port/proto not found")

    monkeypatch.setattr(socket, "getservbyport", fake)
    (entry,) = query(catalogue(), "47001")
    assert entry["name"] == "madeup-svc"
    assert entry["source"] == "system"
    assert entry["risk"] is None and entry["exposure"] is None
    assert query(catalogue(), "47002") == []


# -------------------------------------------------------------- site extensions


def site_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site-ports.yaml"
    path.write_text(text)
    return path


def test_site_file_adds_a_service_usable_in_profiles(
    tmp_path: Path, write_profile: Callable[..., Path]
) -> None:
    ports = site_file(
        tmp_path,
        "- name: acme-api\n  title: ACME API\n  ports: [7443/tcp]\n  risk: low\n  exposure: public\n  category: web\n",
    )
    profile = write_profile("description: x\ninbound: [{service: acme-api}]\n")
    policy = resolve_profile(str(profile), ports=catalogue((str(ports),)))
    assert [(r.name, str(r.ports[0])) for r in policy.rules] == [("acme-api", "7443")]
    result = runner.invoke(app, ["ports", "7443", "--ports", str(ports)])
    assert "acme-api" in result.stdout
    result = runner.invoke(app, ["render", str(profile), "-t", "nftables", "--ports", str(ports)])
    assert result.exit_code == 0 and "tcp dport 7443 counter accept" in result.stdout


def test_site_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ports = site_file(
        tmp_path,
        "- name: envsvc\n  title: Env\n  ports: [7444/tcp]\n  risk: low\n  exposure: public\n  category: web\n",
    )
    monkeypatch.setenv("FWGEN_PORTS", str(ports))
    assert catalogue().get("envsvc") is not None


def test_redefining_a_builtin_is_a_conflict_naming_both(tmp_path: Path) -> None:
    ports = site_file(
        tmp_path,
        "- name: mysql\n  title: My MySQL\n  ports: [3307/tcp]\n  risk: high\n  exposure: lan-only\n  category: database\n",
    )
    with pytest.raises(FwgenError) as err:
        catalogue((str(ports),))
    message = str(err.value)
    assert message.startswith(
        f"{ports}:1: service 'mysql' conflicts with 'mysql' defined at fwgen/data/services.yaml:"
    )
    assert "override: true" in message


def test_override_replaces_a_builtin(tmp_path: Path) -> None:
    ports = site_file(
        tmp_path,
        "- name: mysql\n  override: true\n  title: My MySQL\n  aliases: [mariadb]\n  ports: [3307/tcp]\n"
        "  risk: high\n  exposure: lan-only\n  category: database\n",
    )
    cat = catalogue((str(ports),))
    assert [str(p) for p in cat.require("mysql").ports] == ["3307/tcp"]
    assert cat.origin(cat.require("mysql")) == f"{ports}:1"


def test_alias_taken_by_another_service_is_a_conflict(tmp_path: Path) -> None:
    ports = site_file(
        tmp_path,
        "- name: mything\n  aliases: [www]\n  title: T\n  ports: [1/tcp]\n  risk: low\n  exposure: public\n  category: web\n",
    )
    with pytest.raises(
        FwgenError,
        match=re.escape(
            "service 'mything' conflicts with 'http' defined at fwgen/data/services.yaml:"
        ),
    ):
        catalogue((str(ports),))


def test_site_file_is_validated_with_locations(tmp_path: Path) -> None:
    ports = site_file(
        tmp_path,
        "- name: bad\n  title: T\n  ports: [99999/tcp]\n  risk: low\n  exposure: public\n  category: web\n",
    )
    result = runner.invoke(app, ["ports", "--ports", str(ports)])
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"error: {ports}:3: [0].ports[0]: invalid port '99999/tcp'; ports are 1-65535\n"
    )


def test_builtin_catalogue_is_read_once() -> None:
    assert portdb.builtin_entries() is portdb.builtin_entries()


def test_compiled_catalogue_is_in_sync_with_the_yaml() -> None:
    assert portdb.COMPILED.read_text(encoding="utf-8") == portdb.compile_catalogue(), (
        "run `python -m fwgen.profile.portdb` after editing services.yaml"
    )


def _fields(model: Any) -> Any:
    """A model's every field with its type, and which fields were given, all the way down."""
    if isinstance(model, tuple):
        return tuple(_fields(item) for item in model)
    if not hasattr(model, "model_fields_set"):
        return type(model).__name__, model
    values = {name: _fields(value) for name, value in model.__dict__.items()}
    return type(model).__name__, values, sorted(model.model_fields_set)


def test_compiled_entries_equal_the_validated_ones() -> None:
    """`builtin_entries` builds the compiled entries without validating them again: they
    are what validating services.yaml gives, field by field, tuples where it makes tuples."""
    validated, origins, _ = portdb.read_catalogue(portdb.CATALOGUE, "fwgen/data/services.yaml")
    entries, compiled_origins, _ = portdb.builtin_entries()
    compiled = [portdb.Catalogue(entries).get(e.name) for e in entries]
    assert compiled_origins == origins
    assert [_fields(s) for s in compiled] == [_fields(s) for s in validated]
    assert {hash(s) for s in compiled} == {hash(s) for s in validated}
    assert [(e.name, e.aliases, e.exposure) for e in entries] == [
        (s.name, s.aliases, s.exposure) for s in validated
    ]


def test_the_docs_and_the_readme_count_the_catalogue() -> None:
    count = len(catalogue().services)
    assert f"catalogue ({count} services)" in Path("docs/ports.md").read_text(encoding="utf-8")
    assert f"A catalogue of {count} services" in Path("README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("port", "name"), [("138/tcp", "netbios-dgm-tcp"), ("139/udp", "netbios-ssn-udp")]
)
def test_netbios_registrations_practice_does_not_use_are_lan_only(
    port: str, name: str, tmp_path: Path
) -> None:
    (found,) = query(catalogue(), port)
    assert (found["name"], found["exposure"], found["category"]) == (
        name,
        "lan-only",
        "file-sharing",
    )
    assert "In practice" in found["description"]
    assert [s["document"] for s in found["sources"]] == ["farrow"]
    result = runner.invoke(app, ["ports", port])
    assert result.exit_code == 0 and "(SMB)" in result.stdout
    profile = tmp_path / "p.yaml"
    profile.write_text(f"description: x\ninbound:\n  - {{port: {port}, name: p}}\n")
    result = runner.invoke(app, ["check", str(profile)])
    assert f"warning FW002 [{name}]: {name} (NetBIOS" in result.stdout


def test_ports_source_shows_document_titles_not_file_names() -> None:
    result = runner.invoke(app, ["ports", "137", "--source"])
    assert result.exit_code == 0
    legend = result.stdout.split("\nsources:\n")[1]
    assert "  farrow         Rik Farrow, Ports and Services (1995-2001)" in legend
    assert not re.search(r"\d{3}_[0-9a-f]{16}|\.txt", result.stdout), result.stdout
    found = json.loads(runner.invoke(app, ["ports", "137", "--format", "json"]).stdout)
    titles = {s["title"] for entry in found for s in entry["sources"]}
    assert titles and not any(".txt" in t for t in titles)
