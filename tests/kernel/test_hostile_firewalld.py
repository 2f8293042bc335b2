"""Hostile review of the firewalld target under the real firewalld (firewalld_lab.py):
an interface glob in a profile must not take another program's interface (Docker's zone)
away from it. firewalld sends an interface to the first zone whose name or glob matches
it, and a glob's zone comes ahead of the zone that holds the interface by name: the
install script, and `fwgen apply` before it loads anything, refuse such a binding."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kernel import test_firewalld as lab_module
from tests.kernel.firewalld_lab import Firewalld
from tests.kernel.test_apply import TRUSTED_SSH, Host
from tests.kernel.test_firewalld import files, reach, same, snapshot

pytestmark = pytest.mark.kernel
daemon = lab_module.daemon  # the module's firewalld and its lab, as test_firewalld.py's
fw = lab_module.fw

GLOB = """\
description: a rule on some interfaces
extends: base
inbound:
  - service: ssh
    from: 198.18.1.0/24
  - port: 9090/tcp
    name: app
    interface: [{glob}]
"""


def interfaces(fw: Firewalld, how: str) -> str:
    """Interfaces that take in the engine's bridge (the third link, in zone docker): a
    glob over every server-side link, or its very name."""
    engine_if = fw.box.lab.link(3, "s")
    return engine_if[:-1] + "*" if how == "glob" else engine_if


@pytest.mark.parametrize("how", ["glob", "exact"])
def test_an_interface_of_another_zone_is_refused_and_nothing_changes(
    fw: Firewalld, tmp_path: Path, how: str
) -> None:
    lab = fw.box.lab
    (tmp_path / "glob.yaml").write_text(GLOB.format(glob=interfaces(fw, how)))
    before, reached = snapshot(fw), reach(lab)
    assert reached[("engine", "ipv4")]["tcp:8443"] == "open"
    with pytest.raises(AssertionError) as refused:
        lab.apply("firewalld", files(tmp_path, "glob.yaml"))
    message = str(refused.value).split(": ", 1)[1]  # the script's stderr
    assert message.count("\n") == 0, message
    engine_if = lab.link(3, "s")
    bound = engine_if[:-1] + "+" if how == "glob" else engine_if
    assert message.startswith(
        f"fwgen-firewalld: nothing changed: zone fwgen-if1 is bound to {bound}, which matches "
        f"{engine_if} of zone docker (a final + is a glob): firewalld would send"
    ), message
    same(snapshot(fw), before)
    assert reach(lab) == reached
    assert fw.cmd(f"--get-zone-of-interface={engine_if}").strip() == "docker"


def test_apply_refuses_a_glob_over_another_zones_interface_before_loading(
    fw: Firewalld, tmp_path: Path
) -> None:
    (tmp_path / "glob.yaml").write_text(GLOB.format(glob=interfaces(fw, "glob")))
    before = snapshot(fw)
    host = Host(fw.box.lab, "firewalld", tmp_path / "state", tmp_path)
    refused = host.run(*host.apply_args("glob.yaml", "--yes"), ssh=TRUSTED_SSH)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "nothing was loaded" in refused.stderr and "of zone docker" in refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "fwgen-firewalld: nothing changed: zone fwgen-if1" in errors[0]
    same(snapshot(fw), before)
    assert not host.pending()


def test_a_glob_over_no_other_zones_interface_is_bound_and_the_engine_keeps_its_own(
    fw: Firewalld, tmp_path: Path
) -> None:
    """The refusal is no wider than the overlap: a glob over the first link only is
    installed; the app is open there, closed on the second link, and the engine's zone
    keeps its interface and its port."""
    lab = fw.box.lab
    (tmp_path / "glob.yaml").write_text(GLOB.format(glob=lab.link(1, "s") + "*"))
    lab.apply("firewalld", files(tmp_path, "glob.yaml"))
    after = reach(lab)
    assert after[("trusted", "ipv4")]["tcp:9090"] == "open", after
    assert after[("outside", "ipv4")]["tcp:9090"] == "blocked", after
    assert after[("engine", "ipv4")] == {
        "tcp:8080": "blocked",
        "tcp:8443": "open",
        "tcp:9090": "blocked",
    }
    assert fw.cmd(f"--get-zone-of-interface={lab.link(3, 's')}").strip() == "docker"
