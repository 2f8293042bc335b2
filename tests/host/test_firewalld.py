"""The firewalld backend of `fwgen apply` without a daemon: where each file goes, which
names it refuses, what counts as a runtime a reload would lose, and firewalld's own check
of a configuration folder (firewall-offline-cmd, when installed). The daemon itself is
tests/kernel/test_firewalld.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fwgen.host import firewalld
from fwgen.host.backends import ApplyError
from fwgen.host.firewalld import Firewalld, placements, runtime_only

XML = '<?xml version="1.0" encoding="utf-8"?>\n'
ZONE = XML + '<zone target="DROP"><short>fwgen</short><port port="80" protocol="tcp"/></zone>\n'
IPSET = XML + '<ipset type="hash:net"><entry>192.0.2.0/24</entry></ipset>\n'
POLICY = (
    XML + '<policy target="DROP"><ingress-zone name="HOST"/><egress-zone name="ANY"/></policy>\n'
)


def test_each_file_goes_to_the_folder_of_its_root_element() -> None:
    files = {
        "fwgen.xml": ZONE,
        "ipsets/fwgen-admins-v4.xml": IPSET,
        "fwgen-out.xml": POLICY,
        "fwgen-firewalld.sh": "#!/bin/sh\n",  # the install script is not placed
    }
    assert placements(files) == {
        "/etc/firewalld/zones/fwgen.xml": ZONE,
        "/etc/firewalld/ipsets/fwgen-admins-v4.xml": IPSET,
        "/etc/firewalld/policies/fwgen-out.xml": POLICY,
    }


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("public.xml", ZONE, "public.xml: not one of fwgen's file names"),
        ("zones/../public.xml", ZONE, "not one of fwgen's file names"),
        ("fwgen x.xml", ZONE, "not one of fwgen's file names"),
        ("fwgen.xml", "<direct/>", "<direct> is not a firewalld configuration file"),
        ("fwgen.xml", "<zone>", "fwgen.xml: not XML"),
    ],
)
def test_a_file_that_is_not_fwgens_own_is_refused(name: str, text: str, message: str) -> None:
    with pytest.raises(ApplyError, match=message.replace("(", r"\(")):
        placements({name: text})


def test_rendered_files_without_xml_are_refused() -> None:
    with pytest.raises(ApplyError, match=r"no firewalld configuration \(\*.xml\)"):
        placements({"fwgen.nft": "table inet fwgen {}\n"})


ZONES = """\
public (default, active)
  target: default
  interfaces: eth0
  services: dhcpv6-client ssh
  ports: {ports}

trusted
  target: ACCEPT
  interfaces: {trusted}
  services:
"""


def fake_firewall_cmd(runtime: dict[str, str], permanent: dict[str, str]):  # type: ignore[no-untyped-def]
    def run(*cmd: str, **_: object) -> str:
        assert cmd[0] == "firewall-cmd", cmd
        found = permanent if "--permanent" in cmd else runtime
        return found.get(cmd[-1], "")

    return run


def test_only_what_a_reload_changes_is_runtime_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    """Interfaces (NetworkManager's come back after a reload) and the active/default marks
    are not drift; a port added without --permanent, a direct rule and an ipset not yet
    loaded are."""
    same = {
        "--list-all-zones": ZONES.format(ports="", trusted="docker0"),
        "--list-all-policies": "allow-host-ipv6 (active)\n  priority: -15000\n",
        "--get-ipsets": "",
    }
    permanent = same | {
        "--list-all-zones": ZONES.format(ports="", trusted="").replace(" (default, active)", "")
    }
    monkeypatch.setattr(firewalld, "run", fake_firewall_cmd(same, permanent))
    assert runtime_only() == []
    runtime = same | {
        "--list-all-zones": ZONES.format(ports="1234/tcp", trusted="docker0"),
        "--get-all-rules": "ipv4 filter INPUT 0 -s 192.0.2.9 -j DROP\n",
    }
    permanent |= {"--get-ipsets": "fwgen-admins", "--info-ipset=fwgen-admins": "fwgen-admins\n"}
    monkeypatch.setattr(firewalld, "run", fake_firewall_cmd(runtime, permanent))
    assert runtime_only() == [
        "direct rules: runtime only",
        "ipset fwgen-admins: permanent only",
        "zone public: runtime only: ports: 1234/tcp",
        "zone public: permanent only: ports:",
    ]


@pytest.mark.skipif(shutil.which("firewall-offline-cmd") is None, reason="needs firewalld")
def test_validate_checks_the_whole_folder_with_firewalld_itself(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A copy of a configuration folder with fwgen's files replaced, checked by
    firewall-offline-cmd: an unknown service is refused, the folder itself untouched."""
    etc = tmp_path / "etc"
    for folder in ("zones", "ipsets", "policies", "services", "helpers", "icmptypes"):
        (etc / folder).mkdir(parents=True)
    (etc / "firewalld.conf").write_text("DefaultZone=public\n")
    (etc / "zones" / "fwgen.xml").write_text(ZONE.replace("<port", '<service name="nosuch"/><port'))
    monkeypatch.setattr(firewalld, "ETC", etc)
    work = tmp_path / "work"
    (work / "new").mkdir(parents=True)
    (work / "new" / "fwgen.xml").write_text(ZONE)
    (work / "new" / "fwgen-firewalld.sh").write_text("#!/usr/bin/env bash\nif then\n")
    with pytest.raises(ApplyError, match="bash -n"):  # the install script is checked too
        Firewalld().validate(work)
    (work / "new" / "fwgen-firewalld.sh").write_text("#!/usr/bin/env bash\ntrue\n")
    Firewalld().validate(work)  # the broken old file is replaced: accepted
    (work / "new" / "fwgen.xml").write_text(ZONE.replace("<port", '<service name="htps"/><port'))
    with pytest.raises(ApplyError, match="'htps' not among existing services"):
        Firewalld().validate(work)
    assert "nosuch" in (etc / "zones" / "fwgen.xml").read_text()
    # The install script's own refusals (another zone's interface under a glob), with
    # --check: it changes nothing then.
    (work / "new" / "fwgen.xml").write_text(ZONE)
    (work / "new" / "fwgen-firewalld.sh").write_text(
        '#!/usr/bin/env bash\n[ "$1" = --check ] && echo "$1: nothing changed: d+ takes docker0" >&2\n'
        "exit 1\n"
    )
    with pytest.raises(ApplyError, match="--check: nothing changed: d\\+ takes docker0"):
        Firewalld().validate(work)


def test_a_stopped_firewalld_is_refused_before_anything_is_saved(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """firewall-cmd --state exits 252 when the daemon does not run: nothing to reload,
    so nothing is saved and the apply is refused (the install script is the way then)."""

    def state(cmd: tuple[str, ...], **_: object) -> subprocess.CompletedProcess[bytes]:
        assert cmd == ("firewall-cmd", "--state"), cmd
        return subprocess.CompletedProcess(cmd, firewalld.NOT_RUNNING, b"not running\n", b"")

    monkeypatch.setattr(firewalld.runner, "run", state)
    with pytest.raises(ApplyError, match="firewalld is not running: start it"):
        Firewalld().save(tmp_path)
    assert not (tmp_path / "saved").exists()
