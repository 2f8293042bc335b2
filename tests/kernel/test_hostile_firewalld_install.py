"""Hostile review of the firewalld install script: a write that fails (a full disk while
staging, a file that cannot be replaced half-way through the renames) must leave
/etc/firewalld as it was, the very same files, with nothing staged left behind, and the
next run must work; files named as fwgen's that fwgen did not write, links among them,
and an ipset another zone still names are refused before anything changes.

Offline (the script runs with firewalld stopped, then firewalld starts on what it left),
in a throw-away network and mount namespace over a copy of /etc/firewalld; the ipsets
folder is a 64 KiB tmpfs there, and the failures are real: ENOSPC, and a read-only bind
mount over one of fwgen's files (rename over it and link to it both fail)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from fwgen.policy.resolve import resolve_profile
from fwgen.targets.render import render
from tests.kernel.conftest import need
from tests.kernel.test_firewalld_install import TOOLS, in_a_namespace, write

pytestmark = pytest.mark.kernel

PROFILE = """\
description: partners
extends: base
networks:
  partners: [{partners}]
inbound:
  - port: 9090/tcp
    name: app
    from: partners
"""
SIZES = {"small": 20, "medium": 40, "large": 4000, "few": 2}  # above 16: an ipset
# A zone of an admin's that names fwgen's ipset, and one named as fwgen's zones are.
OFFICE = """<?xml version="1.0" encoding="utf-8"?>
<zone><short>office</short>
  <rule family="ipv4"><source ipset="fwgen-partners-v4"/><port port="22" protocol="tcp"/><accept/></rule>
</zone>
"""
FOREIGN = '<?xml version="1.0" encoding="utf-8"?>\n<zone><short>mine</short></zone>\n'
ELSEWHERE = """<?xml version="1.0" encoding="utf-8"?>
<policy target="CONTINUE"><short>x</short><description>fwgen: x</description>
  <ingress-zone name="HOST"/><egress-zone name="ANY"/></policy>
"""

SESSION = """
set -u
mount --bind "$ETC_COPY" /etc/firewalld
mount -t tmpfs tmpfs /run
mount -t tmpfs -o size=64k tmpfs /etc/firewalld/ipsets
E=/etc/firewalld
files() {  # fwgen's files: content, mode, links, inode (the very same file, or not)
    find $E -name 'fwgen*' | sort | while read -r f; do
        echo "$(sha256sum <"$f" | cut -c1-16) $(stat -c '%a %h %i' "$f") $f"; done
}
left() { echo "LEFT $1 $(find $E -name '*.fwgen-*' | wc -l)"; }
step() {  # NAME COMMAND...: run it, say how it ended
    out=$("${@:2}" 2>&1); echo "STEP $1 rc=$? $(echo "$out" | tr '\\n' ' ')"
}
step small bash "$WORK/small/fwgen-firewalld.sh"
files >"$WORK/files.1"
step large bash "$WORK/large/fwgen-firewalld.sh"
files >"$WORK/files.2"; left large
busy=$E/ipsets/fwgen-partners-v4.xml
mount --bind "$busy" "$busy"; mount -o remount,ro,bind "$busy"
step busy bash "$WORK/medium/fwgen-firewalld.sh"
files >"$WORK/files.3"; left busy
umount "$busy"
echo victim >"$WORK/victim"
ln -s "$WORK/victim" $E/zones/fwgen.xml.fwgen-new
step medium bash "$WORK/medium/fwgen-firewalld.sh"
files >"$WORK/files.4"; left medium
echo "VICTIM $(cat "$WORK/victim")"
cp "$WORK/office.xml" $E/zones/office.xml
step named bash "$WORK/few/fwgen-firewalld.sh"
rm $E/zones/office.xml
cp "$WORK/foreign.xml" $E/zones/fwgen-if9.xml
step foreign bash "$WORK/small/fwgen-firewalld.sh"
rm $E/zones/fwgen-if9.xml
ln -s "$WORK/elsewhere.xml" $E/policies/fwgen-outbound.xml
step linked bash "$WORK/small/fwgen-firewalld.sh"
rm $E/policies/fwgen-outbound.xml
files >"$WORK/files.5"
mkdir -p /run/dbus
bus=$(dbus-daemon --system --fork --print-pid)
firewalld --nofork --nopid --log-target console >"$WORK/firewalld.log" 2>&1 &
daemon=$!
for _ in $(seq 150); do firewall-cmd --state >/dev/null 2>&1 && break; sleep 0.2; done
echo "STATE $(firewall-cmd --state 2>&1) DEFAULT $(firewall-cmd --get-default-zone 2>&1)"
echo "ENTRIES $(firewall-cmd --info-ipset=fwgen-partners-v4 | grep -c '^  entries: ')" \
    "$(firewall-cmd --info-ipset=fwgen-partners-v4 | grep '^  entries: ' | wc -w)"
echo "ERRORS $(grep -c ERROR "$WORK/firewalld.log")"
grep ERROR "$WORK/firewalld.log" | head -3
kill "$daemon"; wait "$daemon"
kill "$bus"
"""


def partners(count: int) -> str:
    return ", ".join(f"10.{i // 250}.{i % 250}.1" for i in range(count))


def test_a_failed_write_leaves_the_old_configuration_and_the_next_run_works(
    tmp_path: Path,
) -> None:
    need(next((f"the firewalld tests need `{t}`" for t in TOOLS if not shutil.which(t)), ""))
    rendered = {}
    for name, count in SIZES.items():
        (tmp_path / f"{name}.yaml").write_text(PROFILE.format(partners=partners(count)))
        rendered[name] = render(resolve_profile(str(tmp_path / f"{name}.yaml")), "firewalld")
        write(rendered[name], tmp_path / name)
    # zones first: a failure at the ipset comes after the zone file was replaced
    assert list(rendered["medium"])[1:] == ["zones/fwgen.xml", "ipsets/fwgen-partners-v4.xml"]
    assert "ipsets/fwgen-partners-v4.xml" not in rendered["few"]
    (tmp_path / "office.xml").write_text(OFFICE)
    (tmp_path / "foreign.xml").write_text(FOREIGN)
    (tmp_path / "elsewhere.xml").write_text(ELSEWHERE)  # a link, even to fwgen's text
    etc = tmp_path / "etc-firewalld"
    shutil.copytree("/etc/firewalld", etc, symlinks=True)
    (etc / "ipsets").mkdir(exist_ok=True)
    out = in_a_namespace(SESSION, etc, tmp_path, "hi")
    said = dict(re.findall(r"^STEP (\w+) rc=\d+ (.*)$", out, re.M))
    assert dict(re.findall(r"^STEP (\w+) rc=(\d+)", out, re.M)) == {
        "small": "0",
        "large": "1",  # no room for its ipset while staging
        "busy": "1",  # the ipset cannot be replaced, after the zone file was
        "medium": "0",  # the next run works
        "named": "1",
        "foreign": "1",
        "linked": "1",
    }, out
    files = [(tmp_path / f"files.{n}").read_text() for n in range(1, 6)]
    # Nothing half-written: fwgen's files are the very same as before each failure
    # (content, mode, one link, inode), and nothing staged or kept is left behind.
    assert files[1] == files[0], out
    assert files[2] == files[0], out
    assert re.findall(r"^LEFT (\w+) (\d+)", out, re.M) == [
        ("large", "0"),
        ("busy", "0"),
        ("medium", "0"),
    ]
    assert "No space left on device" in said["large"], said["large"]
    assert "fwgen's old files are back" in said["busy"], said["busy"]
    assert "fwgen's old files are back" not in said["large"]  # nothing was renamed yet
    # The next run replaced everything, through no stale staged file (a link, not followed).
    assert files[3] != files[0]
    assert (etc / "zones" / "fwgen.xml").read_text() == rendered["medium"]["zones/fwgen.xml"]
    assert "VICTIM victim" in out
    # Refused before anything changed.
    assert (
        "nothing changed: a zone or policy would name ipsets that do not exist: " in said["named"]
    )
    assert "fwgen-partners-v4" in said["named"]
    assert (
        "zones/fwgen-if9.xml is named as fwgen's files are but fwgen did not write"
        in (said["foreign"])
    )
    assert "policies/fwgen-outbound.xml is named as fwgen's files are" in said["linked"]
    assert files[4] == files[3], out
    # firewalld starts on what was left, without an error, with the medium list loaded.
    assert "STATE running DEFAULT fwgen" in out, out
    assert f"ENTRIES 1 {SIZES['medium'] + 1}" in out, out
    assert "ERRORS 0" in out, out
