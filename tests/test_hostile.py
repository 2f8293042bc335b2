"""The hostile corpus: what a pull request controls (file names, paths, zone ids, Unicode
separators, port files, limits) either is refused with one located line and exit 2, or
renders harmlessly on every target. Nothing here may give a traceback or a hang."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fwgen.cli.app import app
from fwgen.read.yamlsource import first_unsafe
from fwgen.targets import TARGETS

runner = CliRunner()
Setup = Callable[[Path], list[str]]


def _files(tmp: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def profile(text: str, **others: str | bytes) -> Setup:
    """A case: p.yaml with *text* (and other files beside it), rendered for nftables."""

    def setup(tmp: Path) -> list[str]:
        _files(tmp, {"p.yaml": text, **others})
        return ["render", str(tmp / "p.yaml"), "-t", "nftables"]

    return setup


def with_args(setup: Setup, *extra: str) -> Setup:
    def wrapped(tmp: Path) -> list[str]:
        return [*setup(tmp), *(a.replace("{tmp}", str(tmp)) for a in extra)]

    return wrapped


SSH = "inbound:\n  - {service: ssh, from: admins}\n"
LIST = "description: x\nnetworks:\n  admins: [{file: list.txt}]\n" + SSH
PORTS = "description: x\ninbound:\n  - {service: game}\n"


def site_ports(entry: str) -> Setup:
    return with_args(profile(PORTS, **{"ports.yaml": entry}), "--ports", "{tmp}/ports.yaml")


def extends_chain(count: int) -> Setup:
    files = {f"p{i}.yaml": f"description: x\nextends: p{i + 1}.yaml\n" for i in range(count)}
    files[f"p{count}.yaml"] = "description: end\n"

    def setup(tmp: Path) -> list[str]:
        _files(tmp, dict(files))
        return ["render", str(tmp / "p0.yaml"), "-t", "nftables"]

    return setup


def network_chain(count: int, fanout: int = 1) -> str:
    lines = ["description: x", "networks:", "  n0: [192.0.2.1]"]
    for i in range(1, count + 1):
        lines.append(f"  n{i}: [{', '.join([f'n{i - 1}'] * fanout)}]")
    return "\n".join(lines) + f"\ninbound:\n  - {{service: ssh, from: n{count}}}\n"


def fifo(name: str, setup: Setup) -> Setup:
    def wrapped(tmp: Path) -> list[str]:
        argv = setup(tmp)
        (tmp / name).unlink(missing_ok=True)
        os.mkfifo(tmp / name)
        return argv

    return wrapped


def symlink(name: str, target: str, setup: Setup) -> Setup:
    def wrapped(tmp: Path) -> list[str]:
        argv = setup(tmp)
        (tmp / name).unlink(missing_ok=True)
        (tmp / name).symlink_to(target)
        return argv

    return wrapped


def command(*argv: str, **files: str | bytes) -> Setup:
    """A case: *files* written, then fwgen *argv* with {tmp} standing for the folder."""

    def setup(tmp: Path) -> list[str]:
        _files(tmp, dict(files))
        return [a.replace("{tmp}", str(tmp)) for a in argv]

    return setup


NMAP = (
    '<?xml version="1.0"?>\n<nmaprun scanner="nmap">\n'
    '<scaninfo type="syn" protocol="tcp" services="{services}"/>\n'
    '<host><address addr="192.0.2.1" addrtype="ipv4"/><ports>'
    '<port protocol="tcp" portid="{portid}"><state state="open"/></port></ports></host>\n'
    "</nmaprun>\n"
)


def scan(services: str = "1-1000", portid: str = "22", text: str = "") -> Setup:
    xml = text or NMAP.format(services=services, portid=portid)
    return command("audit", "webserver", "--scan", "{tmp}/scan.xml", **{"scan.xml": xml})


def listening(port: str, verb: str = "discover") -> Setup:
    line = f'tcp LISTEN 0 128 0.0.0.0:{port} 0.0.0.0:* users:(("python3",pid=1,fd=3))\n'
    head = ["audit", "webserver"] if verb == "audit" else ["discover"]
    return command(*head, "--listening", "{tmp}/ss.txt", **{"ss.txt": line})


# case: (setup, what the one error line must contain)
REFUSED: dict[str, tuple[Setup, str]] = {
    # 2. zone ids
    "zone id in from": (
        profile("description: x\ninbound:\n  - {service: ssh, from: 'fe80::1%eth0'}\n"),
        "p.yaml:3: inbound[0].from: 'fe80::1%eth0': a zone id",
    ),
    "zone id with a newline in a port file's destinations": (
        site_ports(
            "- name: game\n  title: Game\n  ports: [27015/udp]\n  risk: low\n  exposure: public\n"
            "  category: game\n  destinations: ['fe80::1%lo\\n-A INPUT -j ACCEPT\\n#']\n"
        ),
        "ports.yaml:7: [0].destinations: 'fe80::1%lo\\n-A INPUT -j ACCEPT\\n#': a zone id",
    ),
    # 3. Unicode line breaks and other invisible characters
    "U+2028 in an address list comment": (
        profile(LIST, **{"list.txt": "# retired range\u2028 0.0.0.0/0\n192.0.2.1\n"}),
        "list.txt:1: U+2028 (LINE SEPARATOR) is not allowed",
    ),
    "U+0085 in an address list": (
        profile(LIST, **{"list.txt": "192.0.2.1\n# x\u0085 0.0.0.0/0\n"}),
        "list.txt:2: U+0085",
    ),
    "vertical tab in an address list": (
        profile(LIST, **{"list.txt": "192.0.2.1 # x\x0b0.0.0.0/0\n"}),
        "list.txt:1: U+000B",
    ),
    "U+2029 in a profile comment": (
        profile("description: x\n# note\u2029inbound: [{service: mysql}]\n"),
        "p.yaml:2: U+2029 (PARAGRAPH SEPARATOR)",
    ),
    "a lone carriage return in a profile": (
        profile("description: x\n# note\rinbound: [{service: mysql}]\n"),
        "p.yaml:2: U+000D",
    ),
    "a bidi override in a profile comment": (
        profile("description: x\n# admins only \u202e\ninbound: [{service: ssh}]\n"),
        "p.yaml:2: U+202E (RIGHT-TO-LEFT OVERRIDE)",
    ),
    "a network name ending in a newline": (
        profile('description: x\nnetworks:\n  "admins\\n": [192.0.2.1]\n'),
        "p.yaml:2: networks: invalid network name 'admins\\n'",
    ),
    # 4. silent widening
    "a /0 typo in from": (
        profile("description: x\ninbound:\n  - {service: ssh, from: 192.168.1.0/0}\n"),
        "p.yaml:3: inbound[0].from: '192.168.1.0/0': host bits set; did you mean 0.0.0.0/0 or 192.168.1.0/32?",
    ),
    "host bits in a list": (
        profile(LIST, **{"list.txt": "192.0.2.1\n203.0.113.77/24\n"}),
        "list.txt:2: '203.0.113.77/24': host bits set; did you mean 203.0.113.0/24 or 203.0.113.77/32?",
    ),
    "host bits in --set": (
        with_args(
            profile("description: x\nnetworks:\n  admins: []\n" + SSH),
            "--set",
            "admins=192.0.2.1/24",
        ),
        "--set admins: '192.0.2.1/24': host bits set",
    ),
    "netmask notation": (
        profile("description: x\nnetworks:\n  admins: [10.0.0.0/255.0.0.0]\n" + SSH),
        "p.yaml:3: networks.admins[0]: '10.0.0.0/255.0.0.0': netmask notation",
    ),
    "an IPv4-mapped source": (
        profile("description: x\ninbound:\n  - {service: ssh, from: '::ffff:192.0.2.0/120'}\n"),
        "'::ffff:192.0.2.0/120': IPv4-mapped IPv6 addresses never appear",
    ),
    # 5. the backdoor guard
    "a site service on Back Orifice's port": (
        site_ports(
            "- {name: game, title: Game, ports: [31337/udp], risk: low, exposure: public, category: game}\n"
        ),
        "p.yaml:3: game opens back-orifice (Back Orifice), a known backdoor port",
    ),
    "a site service on NetBus's port": (
        site_ports(
            "- {name: game, title: Game, ports: [12345/tcp], risk: low, exposure: public, category: game}\n"
        ),
        "p.yaml:3: game opens netbus (NetBus)",
    ),
    "an override that makes ssh every port": (
        with_args(
            profile(
                "description: x\ninbound:\n  - {service: ssh}\n",
                **{
                    "ports.yaml": "- {name: ssh, override: true, title: SSH, ports: [1-65535/tcp], "
                    "risk: low, exposure: public, category: remote}\n"
                },
            ),
            "--ports",
            "{tmp}/ports.yaml",
        ),
        "p.yaml:3: ssh opens ",
    ),
    "an override that declares a backdoor harmless": (
        with_args(
            profile(
                "description: x\ninbound:\n  - {service: netbus}\n",
                **{
                    "ports.yaml": "- {name: netbus, override: true, title: Fine, ports: [12345/tcp], "
                    "risk: low, exposure: public, category: game}\n"
                },
            ),
            "--ports",
            "{tmp}/ports.yaml",
        ),
        "p.yaml:3: netbus opens netbus (NetBus)",
    ),
    "a port inside Mydoom's range": (
        profile("description: x\ninbound:\n  - {port: 3150/tcp, name: thing}\n"),
        "p.yaml:3: thing opens mydoom",
    ),
    "a range overlapping a backdoor port": (
        profile("description: x\ninbound:\n  - {port: 31000-31400/udp, name: games}\n"),
        "p.yaml:3: games opens back-orifice",
    ),
    # 6. paths that escape
    "an absolute address list": (
        profile("description: x\nnetworks:\n  admins: [{file: /etc/shadow}]\n" + SSH),
        "p.yaml:3: networks.admins[0]: address list '/etc/shadow' is outside",
    ),
    "an address list above the profile's folder": (
        profile("description: x\nnetworks:\n  admins: [{file: ../list.txt}]\n" + SSH),
        "address list '../list.txt' is outside",
    ),
    "an address list through a symlink that leaves the folder": (
        symlink("list.txt", "/etc/passwd", profile(LIST)),
        "p.yaml:3: networks.admins[0]: address list 'list.txt' is outside",
    ),
    "extends above the profile's folder": (
        profile("description: x\nextends: ../../base.yaml\n"),
        "p.yaml:2: extends: profile '../../base.yaml' is outside",
    ),
    "extends into a .git folder": (
        profile("description: x\nextends: .git/p.yaml\n", **{".git/p.yaml": "description: y\n"}),
        "p.yaml:2: extends: profile '.git/p.yaml' is inside a .git folder",
    ),
    "a NUL byte in an extends path": (
        profile('description: x\nextends: "a\\0b.yaml"\n'),
        "p.yaml:2: extends: a path contains a NUL byte",
    ),
    # 7. exhaustion and would-be tracebacks
    "networks nested too deep": (
        profile(network_chain(600)),
        "networks name each other more than 16 levels deep",
    ),
    "extends chained too deep": (extends_chain(40), "more than 16 levels deep"),
    "a FIFO as the profile": (fifo("p.yaml", profile("")), "p.yaml: profile path is a FIFO"),
    "a FIFO as an address list": (
        fifo("list.txt", profile(LIST)),
        "p.yaml:3: networks.admins[0]: address list path is a FIFO",
    ),
    "a directory as an address list": (
        profile(LIST, **{"list.txt/x": "192.0.2.1\n"}),
        "address list path is a directory",
    ),
    "a symlink loop as the profile": (
        symlink("p.yaml", "p.yaml", profile("")),
        "a symlink loop",
    ),
    "a 5,000-digit port": (
        profile("description: x\ninbound:\n  - {port: " + "9" * 5000 + ", name: x}\n"),
        "p.yaml:3: cannot read the value",
    ),
    "20,000-deep nesting": (
        profile("description: " + "[" * 20000 + "]" * 20000 + "\n"),
        "p.yaml:1: values are nested more than 16 levels deep",
    ),
    "nmap scanning two billion ports": (
        scan(services="1-2000000000"),
        "scan.xml: scaninfo services '2000000000' is not a port number (0-65535)",
    ),
    "an nmap port that is a name": (
        scan(portid="ssh"),
        "scan.xml: portid 'ssh' is not a port number (0-65535)",
    ),
    "an nmap port of 5,000 digits": (scan(portid="9" * 5000), "portid '99999999999999999...'"),
    "XML entities in a scan": (
        scan(
            text='<?xml version="1.0"?>\n<!DOCTYPE nmaprun [<!ENTITY a "aaaaaaaaaa">'
            '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n<nmaprun>&b;</nmaprun>\n'
        ),
        "scan.xml:2: the scan declares XML entities",
    ),
    "a scan that is not XML": (
        scan(text="<nmaprun>\n<a>\n</nmaprun>\n"),
        "scan.xml:3: not an nmap XML report",
    ),
    "a FIFO as the scan": (fifo("scan.xml", scan()), "scan.xml: scan path is a FIFO"),
    "U+2028 in ss output": (
        command("discover", "--listening", "{tmp}/ss.txt", **{"ss.txt": "tcp\u2028LISTEN\n"}),
        "ss.txt:1: U+2028 (LINE SEPARATOR) is not allowed",
    ),
    "a 5,000-digit port in ss output for discover": (
        listening("9" * 5000),
        "ss.txt:1: port '99999999999999999...' is not a port number",
    ),
    "a 5,000-digit port in ss output for audit": (
        listening("9" * 5000, "audit"),
        "ss.txt:1: port '99999999999999999...' is not a port number",
    ),
    "a port past 65535 in ss output": (listening("65536"), "ss.txt:1: port '65536'"),
    "a site port file whose title holds a second line": (
        command(
            "discover",
            "--listening",
            "{tmp}/ss.txt",
            "--ports",
            "{tmp}/ports.yaml",
            **{
                "ss.txt": "tcp LISTEN 0 128 0.0.0.0:27015 0.0.0.0:*\n",
                "ports.yaml": '- {name: game, title: "Game\\n  - port: 1-65535/tcp\\n    name: all",'
                " ports: [27015/tcp], risk: low, exposure: public, category: game}\n",
            },
        ),
        "ports.yaml:1: [0].title: title contains a control character '\\n'",
    ),
    "a git revision that is an option": (
        command("diff", "--", "--output={tmp}/written:HEAD/x.yaml", "webserver"),
        "'--output=",
    ),
    "a git path that climbs out": (
        command("diff", "HEAD:../../x.yaml", "webserver"),
        "HEAD:../../x.yaml: give the path from the top of the repository, without '..'",
    ),
    "an explicit !!bool tag": (
        profile("description: !!bool maybe\n"),
        "p.yaml:1: cannot read the value 'maybe...' as !!bool",
    ),
    "an explicit !!int tag on nothing": (
        profile("description: x\ninbound:\n  - {port: !!int '', name: x}\n"),
        "p.yaml:3: cannot read the value '...' as !!int",
    ),
    "a timestamp": (
        profile("description: !!timestamp x\n"),
        "p.yaml:1: a value tagged !!timestamp is not something fwgen reads",
    ),
    "a Python tag": (
        profile("description: !!python/name:os.system x\n"),
        "p.yaml:1: a value tagged !!python/name:os.system is not something fwgen reads",
    ),
    "a 300-character profile name": (
        profile("description: x\nextends: " + "a" * 300 + "\n"),
        "p.yaml:2: extends: unknown profile 'aaaa",
    ),
    "a limit written as a mapping with rate 0": (
        profile("description: x\ninbound:\n  - {service: ssh, limit: {rate: 0, unit: second}}\n"),
        "p.yaml:3: inbound[0].limit.rate: input should be greater than or equal to 1",
    ),
    "a limit mapping whose rate is 0/second": (
        profile("description: x\ninbound:\n  - {service: ssh, limit: {rate: 0/second}}\n"),
        "p.yaml:3: inbound[0].limit: invalid limit '0/second'",
    ),
    "a limit written as a mapping with a huge rate": (
        profile(
            "description: x\ninbound:\n  - {service: ssh, limit: {rate: 99999999999, unit: hour}}\n"
        ),
        "inbound[0].limit.rate: input should be less than or equal to 999999",
    ),
    "coexist: false beside containers": (
        profile("description: x\noptions:\n  containers: docker\n  coexist: false\n"),
        "p.yaml:4: options.coexist: coexist: false with options.containers would make",
    ),
    "a newline in a limit": (
        profile(
            "description: x\ninbound:\n  - port: 8080/tcp\n    name: api\n"
            '    limit: "10/minute\\n\\nfwgen: rendered OK"\n'
        ),
        "p.yaml:5: inbound[0].limit: invalid limit '10/minute??fwgen: rendered OK'",
    ),
    # 8. outputs that would not load
    "a port file range written backwards as a mapping": (
        site_ports(
            "- name: game\n  title: Game\n  ports: [{proto: tcp, start: 9000, end: 8000}]\n"
            "  risk: low\n  exposure: public\n  category: game\n"
        ),
        "ports.yaml:3: [0].ports[0]: invalid port range '9000-8000/tcp'",
    ),
    "a port file range past 65535 as a mapping": (
        site_ports(
            "- name: game\n  title: Game\n  ports: [{proto: tcp, start: 65530, end: 65545}]\n"
            "  risk: low\n  exposure: public\n  category: game\n"
        ),
        "ports are 1-65535",
    ),
    "port 0 as a mapping": (
        site_ports(
            "- name: game\n  title: Game\n  ports: [{proto: udp, start: 0, end: 0}]\n"
            "  risk: low\n  exposure: public\n  category: game\n"
        ),
        "invalid port '0/udp'",
    ),
    # 9. smaller
    "the undocumented key from_": (
        profile("description: x\ninbound:\n  - {service: ssh, from_: 192.0.2.1}\n"),
        "p.yaml:3: inbound[0].from_: unknown key 'from_'",
    ),
}


def _run(tmp_path: Path, setup: Setup) -> tuple[int, str, str]:
    argv = setup(tmp_path)
    result = runner.invoke(app, argv)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_with_one_located_line(case: str, tmp_path: Path) -> None:
    setup, expected = REFUSED[case]
    work = tmp_path / "site" / "hosts"  # room for ../ paths that stay inside tmp_path
    work.mkdir(parents=True)
    start = time.perf_counter()
    code, out, err = _run(work, setup)
    assert time.perf_counter() - start < 10
    assert code == 2, (out, err)
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert expected in err, err
    assert "Traceback" not in err
    assert not (work / "written").exists()


def test_allow_outside_lets_a_profile_name_a_folder_it_trusts(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "list.txt").write_text("192.0.2.1\n")
    (tmp_path / "hosts").mkdir()
    host = tmp_path / "hosts" / "p.yaml"
    host.write_text("description: x\nnetworks:\n  admins: [{file: ../shared/list.txt}]\n" + SSH)
    refused = runner.invoke(app, ["render", str(host), "-t", "nftables"])
    assert refused.exit_code == 2 and "--allow-outside" in refused.stderr
    allowed = runner.invoke(
        app, ["render", str(host), "-t", "nftables", "--allow-outside", str(shared)]
    )
    assert allowed.exit_code == 0, allowed.stderr
    assert "192.0.2.1" in allowed.stdout


def test_networks_named_twice_per_level_cost_one_copy(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(network_chain(16, fanout=2))  # 2**16 paths to one address
    start = time.perf_counter()
    result = runner.invoke(app, ["render", str(tmp_path / "p.yaml"), "-t", "nftables"])
    assert time.perf_counter() - start < 5
    assert result.exit_code == 0, result.stderr
    assert "elements = { 192.0.2.1 }" in result.stdout


def test_an_oversized_list_stops_at_its_limit_quickly(tmp_path: Path) -> None:
    from fwgen.profile.addresses import MAX_ENTRIES

    rows = (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\n" for i in range(MAX_ENTRIES + 1))
    (tmp_path / "list.txt").write_text("".join(rows))
    (tmp_path / "p.yaml").write_text(LIST)
    start = time.perf_counter()
    result = runner.invoke(app, ["render", str(tmp_path / "p.yaml"), "-t", "nftables"])
    assert time.perf_counter() - start < 20
    assert result.exit_code == 2
    assert f"list.txt:{MAX_ENTRIES + 1}: more than 1,000,000 addresses" in result.stderr


def test_whole_family_from_a_list_is_warned_and_reported(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("0.0.0.0/1\n128.0.0.0/1\n2001:db8::1\n")
    (tmp_path / "p.yaml").write_text(LIST)
    rendered = runner.invoke(app, ["render", str(tmp_path / "p.yaml"), "-t", "nftables"])
    assert rendered.exit_code == 0
    assert "warning: network 'admins' (" in rendered.stderr
    assert "holds every IPv4 address (0.0.0.0/0); write `any`" in rendered.stderr
    checked = runner.invoke(app, ["check", str(tmp_path / "p.yaml"), "--format", "json"])
    assert '"code": "FW011"' in checked.stdout
    literal_any = tmp_path / "any.yaml"
    literal_any.write_text("description: x\ninbound:\n  - {service: ssh}\n")
    quiet = runner.invoke(app, ["check", str(literal_any), "--format", "json"])
    assert "FW011" not in quiet.stdout


def test_backdoor_ports_from_site_files_are_findings_too(tmp_path: Path) -> None:
    (tmp_path / "ports.yaml").write_text(
        "- {name: game, title: Game, ports: [31337/udp], risk: low, exposure: public, category: game}\n"
    )
    (tmp_path / "p.yaml").write_text(
        'description: x\ninbound:\n  - {service: game, allow_risky: "lab only"}\n'
    )
    result = runner.invoke(
        app, ["check", str(tmp_path / "p.yaml"), "--ports", str(tmp_path / "ports.yaml")]
    )
    assert result.exit_code == 0  # acknowledged: reported, with the reason, as info
    assert "info FW001 [back-orifice]" in result.stdout
    assert '(accepted: "lab only")' in result.stdout


def test_a_site_folder_called_profiles_uses_its_own_siblings(tmp_path: Path) -> None:
    site = tmp_path / "profiles"
    site.mkdir()
    (site / "base.yaml").write_text(
        "description: site base\nextends: base\ninbound:\n  - {service: ssh}\n"
    )
    (site / "web.yaml").write_text("description: web\nextends: base\n")
    result = runner.invoke(app, ["explain", str(site / "web.yaml"), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    assert '"origin": "base.yaml:4"' in result.stdout  # the site's ssh
    assert "profiles/base.yaml" in result.stdout  # and the built-in base below it


# -------------------------------------------------------------- rendered harmlessly
NEWLINE_NAMES = [
    "evil\nflush ruleset\n#.yaml",
    "evil\nufw disable\n#.yaml",
    "evil\nSet-NetFirewallProfile -All -Enabled False\n#.yaml",
    "evil\n*nat\n-A PREROUTING -j ACCEPT\nCOMMIT\n#.yaml",
    "evil\u2028flush ruleset.yaml",
    "evil\u202e.yaml",
]


@pytest.mark.parametrize("name", NEWLINE_NAMES)
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_file_names_reach_no_ruleset_raw(name: str, target: str, tmp_path: Path) -> None:
    (tmp_path / name).write_text("description: parent\ninbound: [{service: http}]\n")
    quoted = name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    quoted = quoted.replace("\u2028", "\\u2028").replace("\u202e", "\\u202e")
    (tmp_path / "top.yaml").write_text(f'description: top\nextends: "{quoted}"\n')
    result = runner.invoke(app, ["render", str(tmp_path / "top.yaml"), "-t", target])
    assert result.exit_code == 0, result.stderr
    assert first_unsafe(result.stdout.replace("\n", "")) is None
    for line in result.stdout.splitlines():
        assert not line.startswith(
            ("flush ruleset", "ufw disable", "Set-NetFirewallProfile -All -Enabled False", "*nat")
        ), line


def test_standard_input_is_read_like_a_file() -> None:
    big = runner.invoke(app, ["discover", "--listening", "-"], input=b"\xff\xfe\n")
    assert big.exit_code == 2 and big.stderr == "error: <stdin>:1: input file is not UTF-8 text\n"
    nul = runner.invoke(app, ["audit", "webserver", "--listening", "-"], input=b"tcp\0\n")
    assert nul.exit_code == 2 and "<stdin>:1: input file is binary" in nul.stderr


def test_git_diff_skips_links_that_leave_the_folder(tmp_path: Path) -> None:
    import subprocess

    site = tmp_path / "site"
    site.mkdir()
    (site / "web.yaml").write_text("description: web\ninbound: [{service: http}]\n")
    (site / "abs").symlink_to("/etc/passwd")
    (site / "link.yaml").symlink_to("/etc/passwd")
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        same = runner.invoke(app, ["diff", "HEAD:site/web.yaml", "site/web.yaml"])
        link = runner.invoke(app, ["diff", "HEAD:site/link.yaml", "site/web.yaml"])
    finally:
        os.chdir(cwd)
    assert same.exit_code == 0, same.stderr
    assert "no change in what is allowed" in same.stdout
    assert link.exit_code == 2
    assert link.stderr == (
        "error: HEAD:site/link.yaml: no such file at that revision "
        "(a link pointing outside its folder, which fwgen does not follow)\n"
    )


def test_one_list_cannot_be_copied_into_rules_without_end(tmp_path: Path) -> None:
    from fwgen.profile.addresses import MAX_ENTRIES

    rows = (f"10.{i >> 15 & 255}.{i >> 7 & 255}.{(i & 127) * 2}\n" for i in range(MAX_ENTRIES))
    (tmp_path / "big.txt").write_text("".join(rows))
    rules = "".join(
        f"  - {{port: {20000 + k}/tcp, name: r{k}, from: [big, 192.0.2.{k}]}}\n" for k in range(4)
    )
    (tmp_path / "p.yaml").write_text(
        "description: x\nnetworks:\n  big: [{file: big.txt}]\ninbound:\n" + rules
    )
    start = time.perf_counter()
    result = runner.invoke(app, ["render", str(tmp_path / "p.yaml"), "-t", "nftables"])
    assert time.perf_counter() - start < 60
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "p.yaml:6: inbound[1].from: the address sets of this profile would hold more than" in (
        result.stderr
    )


@pytest.mark.parametrize("program", ["yes", "null", "123", "0x1f", "x" * 60])
def test_discover_drafts_rule_names_that_read_back(program: str, tmp_path: Path) -> None:
    ss = "".join(
        f'tcp LISTEN 0 128 0.0.0.0:{port} 0.0.0.0:* users:(("{program}",pid=1,fd=3))\n'
        for port in (40001, 40002)
    )
    draft = tmp_path / "draft.yaml"
    made = runner.invoke(app, ["discover", "--listening", "-", "-o", str(draft)], input=ss)
    assert made.exit_code == 0, made.stderr
    rendered = runner.invoke(app, ["render", str(draft), "-t", "nftables"])
    assert rendered.exit_code == 0, rendered.stderr
    assert "tcp dport 40001 counter accept" in rendered.stdout
    assert "tcp dport 40002 counter accept" in rendered.stdout


@pytest.mark.parametrize("target", ["ufw", "windows", "firewalld"])
def test_a_platform_that_accepts_loopback_and_replies_refuses_to_turn_them_off(
    target: str, tmp_path: Path
) -> None:
    (tmp_path / "p.yaml").write_text(
        "description: x\nextends: base\noptions: {loopback: false, established: false}\n"
    )
    result = runner.invoke(app, ["render", str(tmp_path / "p.yaml"), "-t", target])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(
        f"error: {target}: options loopback and established: false cannot be expressed"
    )
    exact = runner.invoke(app, ["render", str(tmp_path / "p.yaml"), "-t", "nftables"])
    assert exact.exit_code == 0 and "iif lo accept" not in exact.stdout


def test_ufw_stops_at_a_number_of_rules_it_can_apply(tmp_path: Path) -> None:
    spread = (
        f"10.{i >> 7}.0.{(i & 127) * 2}\n" for i in range(900)
    )  # 900 apart: no CIDR joins them
    (tmp_path / "list.txt").write_text("".join(spread))
    rules = "".join(f"  - {{port: {20000 + k}/tcp, name: r{k}, from: big}}\n" for k in range(6))
    (tmp_path / "p.yaml").write_text(
        "description: x\nnetworks:\n  big: [{file: list.txt}]\ninbound:\n" + rules
    )
    result = runner.invoke(app, ["render", str(tmp_path / "p.yaml"), "-t", "ufw"])
    assert result.exit_code == 2
    assert "ufw: this profile needs 5,400 ufw rules (addresses times ports)" in result.stderr


def test_many_rules_are_checked_without_comparing_every_pair(tmp_path: Path) -> None:
    rules = "".join(
        f"  - {{port: {40000 + i}/tcp, name: r{i}, from: [10.0.{i % 250}.0/24]}}\n"
        for i in range(3000)
    )
    (tmp_path / "p.yaml").write_text("description: many\ninbound:\n" + rules)
    start = time.perf_counter()
    result = runner.invoke(app, ["check", str(tmp_path / "p.yaml"), "--format", "json"])
    assert time.perf_counter() - start < 20  # every pair took over a minute
    assert result.exit_code == 2 or "FW007" not in result.stdout


def test_a_scan_repeating_every_port_is_read_once(tmp_path: Path) -> None:
    from fwgen.host.observed import read_nmap

    services = ",".join(["1-65535"] * 2000)
    (tmp_path / "scan.xml").write_text(
        f'<?xml version="1.0"?>\n<nmaprun><scaninfo protocol="tcp" services="{services}"/>'
        + "<a/>" * 100_000
        + "</nmaprun>\n"
    )
    start = time.perf_counter()
    seen, scanned = read_nmap(tmp_path / "scan.xml")
    assert time.perf_counter() - start < 10
    assert seen == [] and scanned == {"tcp": set(range(1, 65536))}


def test_diff_refuses_a_git_folder_larger_than_it_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    from fwgen.read import gitref

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "web.yaml").write_text("description: web\n")
    (tmp_path / "site" / "blob.bin").write_bytes(os.urandom(4096))
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@t", "-c", "user.name=t"]
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "x"]):
        subprocess.run([*git, *step], check=True)
    monkeypatch.setattr(gitref, "MAX_ARCHIVE", 2048)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["diff", "HEAD:site/web.yaml", "site/web.yaml"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: HEAD:site/web.yaml: the profile's folder at that revision holds more than "
        "2,048 bytes; fwgen reads a folder of profiles and lists\n"
    )


@pytest.mark.parametrize(
    ("files", "output"),
    [
        ({"list.txt": "192.0.2.1\n", "p.yaml": LIST}, "list.txt"),
        (
            {"parent.yaml": "description: parent\n", "p.yaml": "description: x\nextends: parent\n"},
            "parent.yaml",
        ),
    ],
)
def test_build_never_writes_over_a_file_a_profile_reads(
    files: dict[str, str], output: str, tmp_path: Path
) -> None:
    _files(
        tmp_path,
        {
            **files,
            "fwgen.yaml": f"hosts:\n  h: {{profile: p.yaml, targets: {{nftables: {output}}}}}\n",
        },
    )
    before = (tmp_path / output).read_text()
    result = runner.invoke(app, ["build", str(tmp_path / "fwgen.yaml")])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {tmp_path / 'fwgen.yaml'}:2: hosts.h.targets.nftables: output {output} would "
        "replace a file that the profile of host 'h' reads (an `extends:` profile or an address "
        "list); write it elsewhere\n"
    )
    assert (tmp_path / output).read_text() == before


@pytest.mark.parametrize(
    ("keep", "expected"),
    [
        ("10.0.0.1\nerror: PWN", "error: --keep 10.0.0.1?error: PWN: "),
        ("[::1", "error: --keep [::1: write ADDR, ADDR:PORT or [IPV6]:PORT"),
        ("10.0.0.1:\uff12\uff12", "is not a port number (1-65535)"),
    ],
)
def test_apply_keep_values_are_one_refused_line(keep: str, expected: str) -> None:
    result = runner.invoke(
        app,
        ["apply", "webserver", "-t", "nftables", "--set", "admins=10.1.0.0/16", "--keep", keep],
    )
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr


def _commit(repo: Path, files: dict[str, str]) -> None:
    import subprocess

    _files(repo, dict(files))
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    if not (repo / ".git").exists():
        subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)


@pytest.mark.parametrize(
    "attributes",
    ["base.yaml export-ignore\n", "*.yaml export-ignore\n"],
)
def test_git_attributes_cannot_hide_a_file_from_diff(
    attributes: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pull request adds a profile that shadows the built-in base (extends finds its
    sibling first) and asks `git archive` to leave it out: diff must still see it."""
    _commit(tmp_path, {"site/web.yaml": "description: web\nextends: base\n"})
    _commit(
        tmp_path,
        {
            "site/base.yaml": "description: open\ninbound:\n  - {service: mysql}\n",
            "site/.gitattributes": attributes,
        },
    )
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(
        app, ["diff", "HEAD~1:site/web.yaml", "HEAD:site/web.yaml", "--format", "json"]
    )
    assert result.exit_code == 1, result.output
    assert [a["service"] for a in json.loads(result.stdout)["added"]] == ["mysql"]


def test_git_links_are_followed_only_inside_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    _files(site, {"web.yaml": "description: web\ninbound: [{service: http}]\n"})
    (site / "alias.yaml").symlink_to("web.yaml")
    (site / "up").symlink_to("..")
    (site / "chain.yaml").symlink_to("up/../etc.yaml")  # through a link that leaves
    _commit(tmp_path, {"etc.yaml": "description: outside\n"})
    monkeypatch.chdir(tmp_path)
    inside = runner.invoke(app, ["diff", "HEAD:site/alias.yaml", "site/web.yaml"])
    assert inside.exit_code == 0 and inside.stdout == "no change in what is allowed\n"
    chain = runner.invoke(app, ["diff", "HEAD:site/chain.yaml", "site/web.yaml"])
    assert chain.exit_code == 2 and "a link pointing outside its folder" in chain.stderr


DIFF_BASE = "description: x\nextends: base\n"
DIFF_SSH = "inbound:\n  - {service: ssh, from: [10.0.0.0/8], host: [10.0.0.1], limit: 10/minute}\n"
DIFF_CASES = {
    # name: (old profile, new profile, a line diff must print)
    "removing containers: docker": (
        "options: {containers: docker, forward: ignore}\n",
        "options: {forward: ignore}\n",
        "~ widened containers: docker -> none",
    ),
    "forward: accept": ("", "options: {forward: accept}\n", "~ widened forward: drop -> accept"),
    "forward: ignore": ("", "options: {forward: ignore}\n", "~ widened forward: drop -> ignore"),
    "removing host:": (
        DIFF_SSH,
        DIFF_SSH.replace(", host: [10.0.0.1]", ""),
        "~ widened ssh 22/tcp from 10.0.0.0/8 on 10.0.0.1 [ipv4]",
    ),
    "limit_prefix_v6: 128": (
        DIFF_SSH,
        DIFF_SSH + "options: {limit_prefix_v6: 128}\n",
        "~ widened limit_prefix_v6: 64 -> 128",
    ),
    "limit_prefix_v4: 1": (
        DIFF_SSH,
        DIFF_SSH + "options: {limit_prefix_v4: 1}\n",
        "~ narrowed limit_prefix_v4: 32 -> 1 (rate limits count IPv4 sources by /1: the "
        "addresses of one /1 share one budget)",
    ),
    "drop_invalid: false": (
        "",
        "options: {drop_invalid: false}\n",
        "~ widened drop_invalid: true -> false",
    ),
    "established: false": (
        "",
        "options: {established: false}\n",
        "~ narrowed established: true -> false",
    ),
    "loopback: false": ("", "options: {loopback: false}\n", "~ narrowed loopback: true -> false"),
    "log_drops: true": ("", "options: {log_drops: true}\n", "~ changed log_drops: false -> true"),
    "coexist: false": (
        "options: {coexist: true}\n",
        "options: {coexist: false}\n",
        "~ changed coexist: true -> false",
    ),
    "a higher rate": (
        DIFF_SSH,
        DIFF_SSH.replace("10/minute", "100/minute"),
        "~ widened ssh 22/tcp",
    ),
    "a larger burst": (
        DIFF_SSH,
        DIFF_SSH.replace("10/minute", "{rate: 10/minute, burst: 50}"),
        "~ widened ssh 22/tcp",
    ),
    "no limit": (DIFF_SSH, DIFF_SSH.replace(", limit: 10/minute", ""), "~ widened ssh 22/tcp"),
    "logging a rule": (
        DIFF_SSH,
        DIFF_SSH.replace("limit: 10/minute", "limit: 10/minute, log: true"),
        "~ changed ssh 22/tcp",
    ),
    "outbound: a list -> accept": (
        "outbound:\n  - {service: dns}\n",
        "outbound: accept\n",
        "~ widened outbound: drop -> accept (every outbound connection is allowed; before only: ",
    ),
    "outbound: accept -> a list": (
        "outbound: accept\n",
        "outbound:\n  - {service: dns}\n",
        "~ narrowed outbound: accept -> drop (outbound only as the rules allow; now only: "
        "ipv6-essentials -/icmpv6, dns 53/tcp, dns 53/udp)",
    ),
}


@pytest.mark.parametrize("case", DIFF_CASES)
def test_diff_sees_every_change_in_what_is_admitted(case: str, tmp_path: Path) -> None:
    old, new, expected = DIFF_CASES[case]
    _files(tmp_path, {"old.yaml": DIFF_BASE + old, "new.yaml": DIFF_BASE + new})
    result = runner.invoke(app, ["diff", str(tmp_path / "old.yaml"), str(tmp_path / "new.yaml")])
    assert result.exit_code == 1, result.output
    assert expected in result.stdout, result.stdout
    # a setting's change is not mistaken for rules opened or closed (findings may say "opens")
    rule_lines = [line for line in result.stdout.splitlines() if not line.startswith("! ")]
    assert not any(" closes " in f" {line} " or " opens " in f" {line} " for line in rule_lines)
    widening = expected.startswith("~ widened") or case == "coexist: false"  # fail2ban's bans go
    assert ("this change lets more in" in result.stdout) == widening


def test_diff_reads_each_sides_port_file_at_its_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    game = "- {{name: game, title: Game, ports: [{ports}], risk: low, exposure: public, category: game}}\n"
    web = "description: web\ninbound:\n  - {service: game, from: [10.0.0.0/8]}\n"
    _commit(tmp_path, {"site/web.yaml": web, "site/ports.yaml": game.format(ports="27015/udp")})
    _commit(tmp_path, {"site/ports.yaml": game.format(ports="1-65535/udp")})
    _files(tmp_path, {"site/ports.yaml": game.format(ports="27015/udp")})  # the working copy
    monkeypatch.chdir(tmp_path)
    ports = ["--ports", "site/ports.yaml"]
    for old, new in (
        ("HEAD~1:site/web.yaml", "HEAD:site/web.yaml"),
        ("site/web.yaml", "HEAD:site/web.yaml"),
    ):
        result = runner.invoke(app, ["diff", old, new, *ports])
        assert result.exit_code == 1, result.output
        assert "~ widened game 27015/udp from 10.0.0.0/8" in result.stdout
        assert "-> game 1-65535/udp from 10.0.0.0/8" in result.stdout
    missing = runner.invoke(
        app, ["diff", "HEAD:site/web.yaml", "site/web.yaml", "--ports", "x.yaml"]
    )
    assert missing.exit_code == 2
    assert (
        missing.stderr
        == "error: HEAD:x.yaml: no such file at that revision (fwgen follows no link)\n"
    )


def test_a_file_named_like_a_revision_cannot_stand_in_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pull request adds the file ``HEAD:site/web.yaml`` (a folder ``HEAD:site``; ``:`` is
    allowed in names) holding its own new profile: read as the old side, the diff would
    say "no change". A name that is both is refused, and ``./`` picks the file."""
    _commit(
        tmp_path,
        {"site/web.yaml": DIFF_BASE + "inbound:\n  - {service: ssh, from: [10.0.0.0/8]}\n"},
    )
    wide = DIFF_BASE + "inbound:\n  - {service: telnet}\n"
    _files(tmp_path, {"site/web.yaml": wide, "HEAD:site/web.yaml": wide})
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["diff", "HEAD:site/web.yaml", "site/web.yaml"])
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "error: HEAD:site/web.yaml: is both a file here and site/web.yaml at git revision "
        "'HEAD' (a pull request can add such a file); write ./HEAD:site/web.yaml for the "
        "file, or move it away for the revision\n"
    )
    local = runner.invoke(app, ["diff", "./HEAD:site/web.yaml", "site/web.yaml"])
    assert local.exit_code == 0 and local.stdout == "no change in what is allowed\n"
