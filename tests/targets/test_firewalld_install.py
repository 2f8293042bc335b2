"""The firewalld install script without a daemon: the interfaces it checks against other
zones, how it tells an interface that two names can both match, and the mark by which it
knows fwgen's own files (kernel tests: tests/kernel/test_hostile_firewalld*.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from fwgen.policy.resolve import resolve_profile
from fwgen.targets.render import render, render_with_warnings
from tests.conftest import BUILTIN, EVERY_FEATURE
from tests.targets.test_firewalld import REFUSED_PROFILES, xml_files

SCRIPT = "fwgen-firewalld.sh"
GLOBS = "description: g\ninbound:\n  - {service: ssh, interface: ['d*', eth1]}\n"


def function(script: str, name: str) -> str:
    """The text of one shell function of the script."""
    start = script.index(f"\n{name}() {{")
    return script[start : script.index("\n}\n", start) + 3]


@pytest.mark.parametrize(
    ("bound", "other", "overlap"),
    [
        ("d+", "docker0", True),  # a glob over another zone's interface
        ("docker0", "docker0", True),  # the very name
        ("d+", "d", True),  # a glob matches its bare prefix too
        ("eth1", "eth+", True),  # another zone's glob takes the name
        ("do+", "d+", True),  # two globs, one inside the other
        ("d+", "do+", True),
        ("eth1+", "eth1", True),
        ("d+", "eth0", False),
        ("eth1", "eth10", False),  # names, not prefixes
        ("eth10", "eth1", False),
        ("ab+", "a", False),
        ("eth1", "+", True),  # a catch-all
    ],
)
def test_two_interface_names_overlap_where_one_interface_can_match_both(
    bound: str, other: str, overlap: bool
) -> None:
    script = render(resolve_profile("webserver"), "firewalld")[SCRIPT]
    test = function(script, "fwgen_overlap") + 'fwgen_overlap "$1" "$2"'
    result = subprocess.run(["bash", "-c", test, "t", bound, other], check=False)
    assert result.returncode == (0 if overlap else 1)


def test_the_script_knows_the_interfaces_fwgen_binds_and_the_render_warns_of_globs(
    write_profile: Callable[..., Path],
) -> None:
    policy = resolve_profile(str(write_profile(GLOBS)))
    files, warnings = render_with_warnings(policy, "firewalld")
    assert "\nfwgen_bound=( fwgen-if1:d+ fwgen-if2:eth1 )\n" in files[SCRIPT]
    globbed = [w for w in warnings if w.startswith("interfaces ")]
    assert globbed == [
        "interfaces d*: firewalld sends every interface d* matches to zone fwgen-if1, ahead of "
        "the zone that holds it by name; the install script refuses while another zone holds "
        "one (Docker's docker0, libvirt's virbr0), but an interface another program adds to its "
        "zone later goes to fwgen's"
    ]
    assert f"# APPROXIMATED: {globbed[0]}\n" in files[SCRIPT]
    plain = render(resolve_profile("webserver"), "firewalld")[SCRIPT]
    assert "\nfwgen_bound=( )\n" in plain


@pytest.mark.parametrize("profile", [*sorted(set(BUILTIN) - REFUSED_PROFILES), str(EVERY_FEATURE)])
def test_every_file_carries_the_mark_the_script_knows_its_own_files_by(profile: str) -> None:
    """The script refuses a file named as fwgen's whose description does not start with
    'fwgen: ' (firewalld keeps it when it rewrites a file): a second run must find every
    file the first one wrote to be fwgen's."""
    files = render(resolve_profile(profile), "firewalld")
    script = files[SCRIPT]
    assert "grep -q '<description>fwgen: '" in script
    for name, root in xml_files(files).items():
        description = root.find("description")
        assert description is not None and description.text, name
        assert description.text.startswith("fwgen: "), name
        assert "\n  <description>fwgen: " in files[name], name  # as the script greps it
