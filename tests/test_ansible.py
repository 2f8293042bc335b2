"""The Ansible collection fwgen.firewall (examples/ansible/ansible_collections/fwgen/firewall).

It builds with ansible-galaxy, passes ansible-lint, and its role runs for real with
ansible-core on this machine with `fwgen_load: none` (installing, never loading) and every
path it writes in a temporary folder. The loading (`fwgen apply` and its guard, in a
network namespace, with the role's own default paths over private copies) is
tests/kernel/test_ansible.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ansiblerun import (
    BIN,
    COLLECTION,
    PLAYBOOK,
    ansible,
    changed,
    environment,
    local,
    tool,
)

ROLE = COLLECTION / "roles" / "fwgen"


def paths(tmp_path: Path) -> dict[str, str]:
    """The role's destinations, in *tmp_path* ("the host")."""
    return {
        "fwgen_dest": str(tmp_path / "host" / "dest"),
        "fwgen_record": str(tmp_path / "host" / "record"),
        "fwgen_nft_conf": str(tmp_path / "host" / "nftables.conf"),
    }


def play(tmp_path: Path, *extra: str, **host: Any) -> subprocess.CompletedProcess[str]:
    """The example playbook on one host, `web`, with *host*'s variables, installing only."""
    inventory = tmp_path / "inventory.yml"
    variables = local(fwgen_load="none", **paths(tmp_path), **host)
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"web": variables}}}))
    return ansible("-i", str(inventory), PLAYBOOK, *extra, home=tmp_path)


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def fwgen(*args: str) -> str:
    done = subprocess.run([str(BIN / "fwgen"), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_collection_builds(tmp_path: Path) -> None:
    done = subprocess.run(
        [tool("ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), "."],
        cwd=COLLECTION,
        capture_output=True,
        text=True,
        env=environment(tmp_path),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with tarfile.open(tmp_path / "fwgen-firewall-0.1.0.tar.gz") as built:
        names = set(built.getnames())
        manifest = json.load(built.extractfile("MANIFEST.json"))  # type: ignore[arg-type]
    assert manifest["collection_info"]["namespace"] == "fwgen"
    assert manifest["collection_info"]["name"] == "firewall"
    assert {
        "plugins/modules/ruleset.py",
        "roles/fwgen/tasks/main.yml",
        "roles/fwgen/meta/argument_specs.yml",
        "meta/runtime.yml",
    } <= names


@pytest.mark.parametrize("where", [".", "../../../playbook.yml"])
def test_ansible_lint_passes(tmp_path: Path, where: str) -> None:
    done = subprocess.run(
        [tool("ansible-lint"), "--offline", "--profile", "production", where],
        cwd=COLLECTION,
        capture_output=True,
        text=True,
        env=environment(tmp_path),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 failure(s), 0 warning(s)" in done.stderr + done.stdout


def test_playbook_syntax(tmp_path: Path) -> None:
    done = ansible("--syntax-check", "-i", "localhost,", PLAYBOOK, home=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_role_installs_once_and_reviews_a_change_in_check_mode(tmp_path: Path) -> None:
    """First run: installed and recorded; second: nothing changes; --check --diff after a
    change: the semantic diff and the text diff shown, nothing written."""
    admins = {"admins": ["10.1.0.0/16"]}
    first = play(tmp_path, fwgen_networks=admins)
    assert first.returncode == 0, first.stdout + first.stderr
    host = tmp_path / "host"
    installed = (host / "dest" / "fwgen.nft").read_text()
    assert "elements = { 10.1.0.0/16 }" in installed and "198.51.100" not in installed
    # The record renders to what is installed: the next run's diff starts from it.
    assert fwgen("render", str(host / "record" / "host.yaml"), "-t", "nftables") == installed
    assert json.loads((host / "record" / "files.json").read_text()) == ["fwgen.nft"]
    conf = f'include "{host}/dest/fwgen.nft"\n'
    assert (host / "nftables.conf").read_text() == conf
    assert "systemd is not running here: nftables.service was not enabled" in first.stdout

    second = play(tmp_path, fwgen_networks=admins)
    assert second.returncode == 0, second.stdout + second.stderr
    assert changed(second.stdout) == [0]

    before = tree(host)
    wider = {"admins": ["10.1.0.0/16", "10.2.0.0/16"]}
    review = play(tmp_path, "--check", "--diff", fwgen_profile="mailserver", fwgen_networks=wider)
    assert review.returncode == 0, review.stdout + review.stderr
    out = review.stdout
    assert "What the rules admit, installed -> new (fwgen diff):" in out
    assert "+ opens smtp 25/tcp from any [ipv4+ipv6]" in out
    assert "- closes https 443/tcp from any" in out
    assert (
        "10.2.0.0/16"
        in out.split("What the rules admit, installed -> new (fwgen diff):")[1].split("--- before")[
            0
        ]
    )
    assert (
        f"--- before: {host}/dest/fwgen.nft" in out and f"+++ after: {host}/dest/fwgen.nft" in out
    )
    assert '+\t\tmeta nfproto ipv4 tcp dport 25 counter accept comment "smtp: SMTP"' in out
    assert changed(out) == [1]
    assert tree(host) == before  # nothing written

    done = play(tmp_path, fwgen_profile="mailserver", fwgen_networks=wider)
    assert done.returncode == 0 and changed(done.stdout) == [1], done.stdout
    assert "tcp dport 25 counter accept" in (host / "dest" / "fwgen.nft").read_text()
    again = play(tmp_path, "--check", "--diff", fwgen_profile="mailserver", fwgen_networks=wider)
    assert again.returncode == 0 and changed(again.stdout) == [0], again.stdout
    assert "What the rules admit" not in again.stdout


@pytest.mark.parametrize(
    ("networks", "refused"),
    [
        (
            {},  # the built-in profile's placeholder admins
            "profiles/webserver.yaml:14: ssh admits only documentation addresses "
            "(198.51.100.0/24, 2001:db8:100::/48, from network 'admins')",
        ),
        ({"admins": []}, "ssh: network 'admins' is empty, so this rule matches nothing"),
    ],
)
def test_the_role_refuses_rules_that_admit_no_one(
    tmp_path: Path, networks: dict[str, list[str]], refused: str
) -> None:
    done = play(tmp_path, fwgen_networks=networks)
    assert done.returncode != 0, done.stdout
    assert refused in done.stdout, done.stdout  # without -v
    assert not (tmp_path / "host").exists()
    if networks:
        return
    allowed = play(tmp_path, fwgen_networks=networks, fwgen_allow_placeholders=True)
    assert allowed.returncode == 0, allowed.stdout
    assert "198.51.100.0/24" in (tmp_path / "host" / "dest" / "fwgen.nft").read_text()


def test_the_role_refuses_the_iptables_coexist_mode(tmp_path: Path) -> None:
    """netfilter-persistent would load rules.v4 whole, without the loader's jump."""
    networks = {"admins": ["10.1.0.0/16"], "web_clients": ["10.2.0.0/16"]}
    done = play(
        tmp_path, fwgen_profile="docker-host", fwgen_target="iptables", fwgen_networks=networks
    )
    assert done.returncode != 0
    assert "shares the filter table" in done.stdout and "fwgen-iptables.sh" in done.stdout
    assert not (tmp_path / "host").exists()


def test_the_role_reads_a_site_folder_and_diffs_its_files(tmp_path: Path) -> None:
    """A profile that extends a site file and reads an address list: the site is copied
    with it, and a change to the list alone shows in the semantic diff."""
    site = tmp_path / "site"
    (site / "profiles" / "lists").mkdir(parents=True)
    (site / "profiles" / "common.yaml").write_text(
        "description: common\nextends: webserver\n"
        "networks:\n  partners: {file: lists/partners.txt}\n"
    )
    (site / "profiles" / "lists" / "partners.txt").write_text("192.0.2.0/24\n")
    (site / "profiles" / "web1.yaml").write_text(
        "description: web1\nextends: common.yaml\ninbound:\n  - {service: imaps, from: partners}\n"
    )
    settings = {
        "fwgen_site": str(site),
        "fwgen_profile": "profiles/web1.yaml",
        "fwgen_networks": {"admins": ["10.1.0.0/16"]},
        "fwgen_allow_placeholders": True,  # partners: documentation addresses
    }
    first = play(tmp_path, **settings)
    assert first.returncode == 0, first.stdout + first.stderr
    record = tmp_path / "host" / "record"
    assert (record / "site" / "profiles" / "lists" / "partners.txt").read_text() == "192.0.2.0/24\n"
    (site / "profiles" / "lists" / "partners.txt").write_text("192.0.2.0/24\n10.9.0.0/16\n")
    review = play(tmp_path, "--check", "--diff", **settings)
    assert review.returncode == 0 and changed(review.stdout) == [1], review.stdout
    assert "imaps 993/tcp" in review.stdout and "10.9.0.0/16" in review.stdout
    assert "10.9.0.0/16" not in (tmp_path / "host" / "dest" / "fwgen.nft").read_text()


def test_the_role_installs_iptables_files_and_removes_only_its_own(tmp_path: Path) -> None:
    partners = [f"203.0.113.{i}" for i in range(2, 42, 2)]  # more than 16: an ipsets file
    big = tmp_path / "wall.yaml"
    big.write_text(
        "description: many partners\nextends: base\n"
        f"networks:\n  partners: [{', '.join(partners)}]\n"
        "inbound:\n  - {service: ssh, from: partners}\n"
    )
    dest = tmp_path / "host" / "dest"
    dest.mkdir(parents=True)
    (dest / "ipsets.admin").write_text("an admin's own file\n")
    settings = {"fwgen_target": "iptables", "fwgen_allow_placeholders": True}
    first = play(tmp_path, fwgen_profile=str(big), **settings)
    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(p.name for p in dest.iterdir()) == [
        "ipsets",
        "ipsets.admin",
        "rules.v4",
        "rules.v6",
    ]
    assert "fwgen-partners-v4" in (dest / "ipsets").read_text()
    assert oct((dest / "rules.v4").stat().st_mode & 0o777) == "0o600"
    small = play(tmp_path, fwgen_profile="workstation", **settings)  # no sets
    assert small.returncode == 0, small.stdout + small.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["ipsets.admin", "rules.v4", "rules.v6"]
    assert "fwgen-partners" not in (dest / "rules.v4").read_text()


def test_the_role_installs_the_ufw_script(tmp_path: Path) -> None:
    networks = {"admins": ["10.1.0.0/16"]}
    done = play(tmp_path, fwgen_target="ufw", fwgen_networks=networks)
    assert done.returncode == 0, done.stdout + done.stderr
    dest = tmp_path / "host" / "dest"
    assert [p.name for p in dest.iterdir()] == ["fwgen-ufw.sh"]
    assert oct((dest / "fwgen-ufw.sh").stat().st_mode & 0o777) == "0o700"  # the script runs
    again = play(tmp_path, fwgen_target="ufw", fwgen_networks=networks)
    assert again.returncode == 0 and changed(again.stdout) == [0], again.stdout


def test_the_role_renders_firewalld_strict_unless_told(tmp_path: Path) -> None:
    """webserver's rate limits cannot hold on firewalld: --strict fails the play, and
    fwgen_strict: false installs it with fwgen's warnings shown."""
    networks = {"admins": ["10.1.0.0/16"]}
    done = play(tmp_path, fwgen_target="firewalld", fwgen_networks=networks)
    assert done.returncode != 0 and "not rate limited" in done.stdout, done.stdout
    assert not (tmp_path / "host").exists()
    settings = {"fwgen_target": "firewalld", "fwgen_networks": networks, "fwgen_strict": False}
    done = play(tmp_path, **settings)
    assert done.returncode == 0, done.stdout
    assert "[WARNING]: fwgen: ssh (profiles/webserver.yaml:14): not rate limited" in (
        done.stdout + done.stderr
    )
    dest = tmp_path / "host" / "dest"
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == [
        "fwgen-firewalld.sh",
        "zones/fwgen.xml",
    ]
    again = play(tmp_path, **settings)
    assert again.returncode == 0 and changed(again.stdout) == [0], again.stdout


def test_the_role_enables_each_target_s_boot_service_with_the_systemd_module() -> None:
    boot = yaml.safe_load((ROLE / "tasks" / "boot.yml").read_text())
    (enable,) = [t for t in boot if "ansible.builtin.systemd_service" in t]
    assert enable["ansible.builtin.systemd_service"] == {
        "name": "{{ fwgen_boot_service }}",
        "enabled": True,
    }
    defaults = (ROLE / "defaults" / "main.yml").read_text()
    for service in ("nftables", "netfilter-persistent", "ufw", "firewalld"):
        assert f"'{service}.service'" in defaults
    main = yaml.safe_load((ROLE / "tasks" / "main.yml").read_text())
    (package,) = [t for t in main if "ansible.builtin.package" in t]
    assert package["ansible.builtin.package"]["name"] == "{{ fwgen_packages }}"


@pytest.mark.parametrize(
    ("ssh", "keep"),
    [
        ("192.0.2.10 50000 192.0.2.1 2222", ["192.0.2.10:2222"]),
        ("2001:db8::10 50000 2001:db8::1 22", ["[2001:db8::10]:22"]),
        ("", []),  # a local connection: nothing to keep
    ],
)
def test_the_role_passes_the_controller_s_connection_to_fwgen_apply(
    tmp_path: Path, ssh: str, keep: list[str]
) -> None:
    """sudo and become drop SSH_CONNECTION: the role reads it without become (its own
    tasks file, run for real) and the module is given it as a keep address."""
    playbook = tmp_path / "controller.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "all",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "ansible.builtin.include_role": {
                                "name": "fwgen.firewall.fwgen",
                                "tasks_from": "controller",
                            }
                        },
                        {
                            "ansible.builtin.copy": {
                                "content": "{{ fwgen_controller_keep | to_json }}",
                                "dest": str(tmp_path / "keep.json"),
                                "mode": "0600",
                            }
                        },
                    ],
                }
            ]
        )
    )
    settings = json.dumps(
        {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    )
    done = ansible(
        "-i", "localhost,", str(playbook), "-e", settings, home=tmp_path, SSH_CONNECTION=ssh
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((tmp_path / "keep.json").read_text()) == keep
    ruleset = yaml.safe_load((ROLE / "tasks" / "ruleset.yml").read_text())
    (block,) = [t for t in ruleset if "block" in t]
    (module,) = [t for t in block["block"] if "fwgen.firewall.ruleset" in t]
    args = module["fwgen.firewall.ruleset"]
    assert args["keep"] == "{{ fwgen_keep + (fwgen_controller_keep | default([])) }}"
    assert args["load"] == "{{ fwgen_load }}"
    assert yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["fwgen_load"] == "apply"


def test_no_fixed_temporary_paths() -> None:
    for path in COLLECTION.rglob("*"):
        if path.is_file() and path.suffix in {".yml", ".py", ".md"}:
            assert "/tmp" not in path.read_text(), path
