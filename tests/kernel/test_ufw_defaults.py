"""The ufw script against what an admin or another tool wrote into ufw's files.

ufw's start (/lib/ufw/ufw-init) takes the default policies by sourcing /etc/default/ufw
with sh, then /etc/ufw/ufw.conf; the script skips a `ufw default` only where the file
already says what the profile wants. Lines an admin or another tool wrote, in forms sh
reads but a line-by-line match does not, must never leave the kernel's policy wider
than the profile with exit 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from fwgen.lab.netns import LabError
from fwgen.policy.resolve import resolve_profile
from fwgen.targets import RenderOptions
from fwgen.targets.render import render
from tests.kernel.lab import Lab

pytestmark = pytest.mark.kernel


def script() -> str:
    policy = resolve_profile("webserver", {"admins": ["192.0.2.1"]})
    return render(policy, "ufw", RenderOptions())["fwgen-ufw.sh"]


def policies(lab: Lab, chain: str) -> list[str]:
    return [
        lab.run(lab.server, tool, "-S", chain).splitlines()[0] for tool in ("iptables", "ip6tables")
    ]


# Each adds, after ufw's own `DEFAULT_INPUT_POLICY="DROP"`, a line sh reads as ACCEPT.
OPENED = {
    "comment": 'DEFAULT_INPUT_POLICY="ACCEPT"  # opened for a test\n',
    "single quotes": "DEFAULT_INPUT_POLICY='ACCEPT'\n",
    "trailing blank": 'DEFAULT_INPUT_POLICY="ACCEPT" \n',
    "export": 'export DEFAULT_INPUT_POLICY="ACCEPT"\n',
    "two on a line": 'IPT_MODULES=""; DEFAULT_INPUT_POLICY="ACCEPT"\n',
}


@pytest.mark.parametrize("line", OPENED.values(), ids=OPENED.keys())
def test_a_default_sh_reads_wider_is_never_left_with_exit_0(lab: Lab, line: str) -> None:
    lab.ufw("true\n")  # the private copies, as the package installed them
    assert lab.ufw_dir is not None
    defaults = Path(lab.ufw_dir, "default-ufw")
    defaults.write_text(defaults.read_text() + line)
    try:
        lab.ufw(script())
    except LabError as error:  # refused (by ufw or the script): said so, exit non-zero
        assert "policy" in str(error).lower()
        return
    assert policies(lab, "INPUT") == ["-P INPUT DROP", "-P INPUT DROP"]


def test_a_policy_opened_in_the_kernel_is_closed_again(lab: Lab) -> None:
    """/etc/default/ufw says DROP, but the live policy was opened by hand (iptables -P):
    a run sets the profile's default again, as it did when it always ran `ufw default`."""
    lab.ufw(script())
    for tool in ("iptables", "ip6tables"):
        lab.run(lab.server, tool, "-P", "INPUT", "ACCEPT")
    lab.ufw(script())
    assert policies(lab, "INPUT") == ["-P INPUT DROP", "-P INPUT DROP"]


def test_ufw_conf_overriding_the_default_is_refused(lab: Lab) -> None:
    """ufw-init sources /etc/ufw/ufw.conf after /etc/default/ufw: a default policy set
    there wins, and `ufw default` never changes it."""
    lab.ufw("true\n")
    assert lab.ufw_dir is not None
    conf = Path(lab.ufw_dir, "etc-ufw", "ufw.conf")
    conf.write_text(conf.read_text() + 'DEFAULT_INPUT_POLICY="ACCEPT"\n')
    with pytest.raises(LabError, match="DEFAULT_INPUT_POLICY"):
        lab.ufw(script())


def test_a_marker_like_line_of_another_tool_is_not_fwgens_block(lab: Lab) -> None:
    """`# BEGIN fwgen-docker` (another tool's section) is not fwgen's marker: the block is
    put in as on a file without one, and the other line stays."""
    lab.ufw("true\n")
    assert lab.ufw_dir is not None
    path = Path(lab.ufw_dir, "etc-ufw", "before.rules")
    theirs = "# BEGIN fwgen-docker: another tool's section\n# END fwgen-docker\n"
    edited = path.read_text().replace("# End required lines\n", f"# End required lines\n{theirs}")
    path.write_text(edited)
    lab.ufw(script())
    text = path.read_text()
    assert text.count("# BEGIN fwgen:") == 1 and theirs in text
    assert policies(lab, "INPUT") == ["-P INPUT DROP", "-P INPUT DROP"]
