"""A host that drops `containers:` (and takes it up again): each load leaves the new
profile's container chains, or none, and nothing of the old profile's; on ufw, fwgen's
block of after.rules and after6.rules goes, and the rest of those files stays byte for
byte as it was."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fwgen.policy.resolve import resolve_profile
from fwgen.targets.render import render
from tests.kernel.lab import Lab
from tests.kernel.test_apply import TRUSTED_SSH, Host
from tests.kernel.test_containers import (
    CONTAINER,
    FAMILIES,
    LOADERS,
    SAVE,
    TARGETS,
    docker_lab,
    forward_is_docker_first,
    restricted,
)

pytestmark = pytest.mark.kernel

AFTER = ("after.rules", "after6.rules")
# The admin's own lines in after.rules (and another tool's marked section): they stay.
OWN = (
    "# BEGIN other-tool\n"
    "-A ufw-after-input -p tcp --dport 4444 -j ufw-skip-to-policy-input\n"
    "# END other-tool\n"
)
CHAINS = ("FWGEN-CONTAINERS", "FWGEN-ROUTED")


def files(lab: Lab, target: str, containers: bool) -> dict[str, str]:
    """docker-host (80, 443 and 8080 from the trusted client only), with its
    `containers: docker` or without it."""
    trusted = lab.clients["trusted"]
    addresses = [trusted.ipv4, trusted.ipv6]
    policy = resolve_profile("docker-host", {"admins": addresses, "web_clients": addresses})
    return render(policy if containers else policy.replace(containers=None), target)


def after_files(lab: Lab) -> dict[str, str]:
    assert lab.ufw_dir is not None
    return {name: Path(lab.ufw_dir, "etc-ufw", name).read_text() for name in AFTER}


def with_own_lines(lab: Lab) -> dict[str, str]:
    """The lab's private after.rules and after6.rules with the admin's lines before COMMIT."""
    lab.ufw("true\n")
    assert lab.ufw_dir is not None
    for name in AFTER:
        path = Path(lab.ufw_dir, "etc-ufw", name)
        text = path.read_text()
        at = text.rindex("COMMIT\n")
        own = OWN if name == "after.rules" else OWN.replace("ufw-", "ufw6-")
        path.write_text(text[:at] + own + text[at:])
    return after_files(lab)


def kernel_chains(lab: Lab, target: str) -> dict[str, list[str]]:
    """fwgen's container chains in the kernel, and every rule that names them."""
    if target == "nftables":
        text = lab.run(lab.server, "nft", "list", "ruleset")
        return {"nft": [line.strip() for line in text.splitlines() if "containers" in line]}
    found = {}
    for family in FAMILIES:
        lines = lab.run(lab.server, SAVE[family], "-t", "filter").splitlines()
        found[family] = [line for line in lines if any(chain in line for chain in CHAINS)]
    return found


def without_block(text: str) -> str:
    begin, end = text.index("# BEGIN fwgen"), text.index("# END fwgen")
    return text[:begin] + text[text.index("\n", end) + 1 :]


def open_to_everyone(lab: Lab) -> None:
    """Without `containers:` Docker's own rules decide: its published port, and the
    container's port behind it reached straight, are open to anyone, in both families."""
    outside = lab.clients["outside"].ns
    for family in FAMILIES:
        assert lab.probe("outside", family, ["tcp:8080"]) == {"tcp:8080": "open"}, family
        direct = lab.probe_from(outside, CONTAINER[family], ["tcp:80"])
        assert direct == {"tcp:80": "open"}, family


@pytest.mark.parametrize("target", TARGETS)
def test_dropping_containers_leaves_nothing_of_them(lab: Lab, target: str) -> None:
    """Without, with, without, with: each load leaves one set of container chains, or
    none, and a second identical load changes nothing."""
    docker_lab(lab)
    original = with_own_lines(lab) if target == "ufw" else {}
    docker = {family: lab.docker_chains(SAVE[family]) for family in FAMILIES}
    for containers in (False, True, False, True, False):
        rendered = files(lab, target, containers)
        lab.apply(target, rendered)
        loaded = kernel_chains(lab, target)
        written = after_files(lab) if target == "ufw" else {}
        lab.apply(target, rendered)  # again: nothing moves
        assert kernel_chains(lab, target) == loaded
        if target == "ufw":
            assert after_files(lab) == written
        if containers:
            restricted(lab)
            assert all(loaded.values()), loaded
            if target in LOADERS:
                forward_is_docker_first(lab)
            for name in written:
                assert written[name].count("# BEGIN fwgen") == 1, name
                assert written[name].count("# END fwgen") == 1, name
                assert without_block(written[name]) == original[name], name
        else:
            assert not any(loaded.values()), loaded
            assert written == original  # byte for byte, the admin's lines too
            open_to_everyone(lab)
        for family in FAMILIES:  # Docker's own rules, fwgen's jump aside, as they were
            ours = "-A DOCKER-USER -j FWGEN-CONTAINERS"
            kept = [line for line in lab.docker_chains(SAVE[family]) if line != ours]
            assert kept == docker[family], family


BROKEN = {
    "unterminated": "# BEGIN fwgen: a block whose end was deleted\n",
    "twice": "# BEGIN fwgen: a second block\n# END fwgen\n",
    "end alone": "# END fwgen\n",
}


@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_a_block_that_cannot_be_taken_out_safely_stops_the_script(lab: Lab, broken: str) -> None:
    """Markers broken by an edit: the script without `containers:` cannot tell which
    lines are fwgen's. It says so, exits 2, and changes no file, chain or rule."""
    docker_lab(lab)
    lab.apply("ufw", files(lab, "ufw", containers=True))
    assert lab.ufw_dir is not None
    path = Path(lab.ufw_dir, "etc-ufw", "after6.rules")
    text = path.read_text()
    if broken == "unterminated":
        text = text.replace("# END fwgen\n", "")
    else:
        at = text.rindex("COMMIT\n")
        text = text[:at] + BROKEN[broken] + text[at:]
    path.write_text(text)
    before = after_files(lab)
    loaded = kernel_chains(lab, "ufw")
    rules = lab.ufw("true\n")
    done = subprocess.run(
        ["ip", "netns", "exec", lab.server, *lab.ufw_root(), "bash", "-s"],
        input=files(lab, "ufw", containers=False)["fwgen-ufw.sh"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        "fwgen: /etc/ufw/after6.rules: fwgen's block cannot be taken out (its markers are "
        "broken: a BEGIN without its END, an END without its BEGIN, or two blocks): leave "
        "one block, or none, and run this again; nothing changed"
    ]
    assert after_files(lab) == before
    assert kernel_chains(lab, "ufw") == loaded
    assert lab.ufw("true\n") == rules
    restricted(lab)


def test_refuse_reject_dropped_takes_its_block_out_of_after_rules(lab: Lab) -> None:
    """`refuse: reject` has a block of its own in after.rules and after6.rules: a
    profile without it leaves those files as ufw's package wrote them."""
    original = with_own_lines(lab)
    policy = resolve_profile("webserver", {"admins": ["192.0.2.1"]})
    lab.ufw(render(policy.replace(refuse="reject"), "ufw")["fwgen-ufw.sh"])
    mark = "options.refuse: reject"  # the comment of the rejects
    rejected = after_files(lab)
    assert all(mark in rejected[name] for name in AFTER), rejected
    for family in FAMILIES:
        assert mark in lab.run(lab.server, SAVE[family], "-t", "filter"), family
    lab.ufw(render(policy, "ufw")["fwgen-ufw.sh"])
    assert after_files(lab) == original
    for family in FAMILIES:
        assert mark not in lab.run(lab.server, SAVE[family], "-t", "filter"), family


NO_CONTAINERS = """\
description: docker-host without containers
extends: base
networks: {admins: [198.51.100.0/24], web_clients: [203.0.113.0/24]}
inbound:
  - {service: ssh, from: admins}
  - {service: [http, https, http-alt], from: web_clients}
"""


def test_rolling_back_an_apply_without_containers_puts_the_jump_back(
    lab: Lab, tmp_path: Path
) -> None:
    """An apply that drops `containers:` deletes fwgen's chains and the jump to them;
    unconfirmed, it is rolled back: the chains, the jump first in DOCKER-USER and what
    they restrict are back."""
    docker_lab(lab)
    host = Host(lab, "ufw", tmp_path / "state", tmp_path)
    trusted = lab.clients["trusted"]
    sets = [f"--set=admins={trusted.ipv4},{trusted.ipv6}"]
    sets.append(f"--set=web_clients={trusted.ipv4},{trusted.ipv6}")
    args = ["apply", "docker-host", "--target", "ufw", *sets]
    done = host.run(*args, "--yes", ssh=TRUSTED_SSH)
    assert done.returncode == 0, done.stdout + done.stderr
    restricted(lab)
    chains = kernel_chains(lab, "ufw")
    written = after_files(lab)
    (tmp_path / "no-containers.yaml").write_text(NO_CONTAINERS)
    proc = host.start(*host.apply_args("no-containers.yaml", *sets, "--confirm", "3"))
    assert not any(kernel_chains(lab, "ufw").values())  # loaded: the chains are gone
    out, _ = proc.communicate(timeout=120)  # no answer: rolled back
    assert proc.returncode == 1 and "rolled back" in out, out
    assert after_files(lab) == written
    assert kernel_chains(lab, "ufw") == chains
    forward_is_docker_first(lab)
    restricted(lab)


def test_apply_refuses_a_doubled_block_before_it_saves_anything(lab: Lab, tmp_path: Path) -> None:
    """`fwgen apply` checks the markers of ufw's files first: two blocks in after.rules
    are refused with the file and line (exit 2); no file, chain or rule changes."""
    original = with_own_lines(lab)
    assert lab.ufw_dir is not None
    path = Path(lab.ufw_dir, "etc-ufw", "after.rules")
    block = "# BEGIN fwgen: an old block\n# END fwgen\n"
    at = original["after.rules"].rindex("COMMIT\n")
    doubled = original["after.rules"][:at] + block + block + original["after.rules"][at:]
    path.write_text(doubled)
    second = doubled[:at].count("\n") + 3
    before = {family: lab.run(lab.server, SAVE[family], "-t", "filter") for family in FAMILIES}
    (tmp_path / "no-containers.yaml").write_text(NO_CONTAINERS)
    host = Host(lab, "ufw", tmp_path / "state", tmp_path)
    admins = f"--set=admins={lab.clients['trusted'].ipv4}"
    done = host.run(*host.apply_args("no-containers.yaml", admins, "--yes"), ssh=TRUSTED_SSH)
    assert done.returncode == 2, done.stdout + done.stderr
    assert (
        f"error: nothing was loaded: /etc/ufw/after.rules:{second}: a second block of "
        f"fwgen's (the first ends at line {second - 1}): "
    ) in done.stderr
    assert after_files(lab) == {**original, "after.rules": doubled}
    after = {family: lab.run(lab.server, SAVE[family], "-t", "filter") for family in FAMILIES}
    assert [line for line in after if not line.startswith("#")] == [
        line for line in before if not line.startswith("#")
    ]
    assert "Status: inactive" in lab.ufw("ufw status\n")
