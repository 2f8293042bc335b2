"""ufw's files as `fwgen apply` checks them, and fwgen's container chains as it saves
and restores them (the restore's iptables-restore input, read here; the kernel tests
load it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fwgen.errors import FwgenError
from fwgen.host.ufwfiles import check_markers, container_state, restore_container_state

HEAD = "*filter\n:ufw-after-input - [0:0]\n# End required lines\n"
BLOCK = "# BEGIN fwgen: written by fwgen-ufw.sh\n:FWGEN-CONTAINERS - [0:0]\n# END fwgen\n"
FIX = (
    "fwgen's block cannot be told apart from the rest of the file; leave one block with "
    "both markers (or none) and apply again"
)


@pytest.mark.parametrize(
    "text",
    [
        HEAD + "COMMIT\n",
        HEAD + BLOCK + "COMMIT\n",
        HEAD + "# BEGIN fwgenerator: another tool's\n# END fwgenerator\nCOMMIT\n",
    ],
)
def test_files_the_script_can_splice_pass(tmp_path: Path, text: str) -> None:
    path = tmp_path / "after.rules"
    path.write_text(text)
    check_markers(path)


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        (HEAD + BLOCK + BLOCK, 7, "a second block of fwgen's (the first ends at line 6)"),
        (HEAD + BLOCK.replace("# END fwgen\n", "") + "COMMIT\n", 4, None),
        # as the script's awk sees it: "# END fwgen\r" is no END (\r ends no line)
        (HEAD + BLOCK.replace("\n", "\r\n") + "COMMIT\n", 4, None),
        (HEAD + "# END fwgen\n" + BLOCK, 4, "'# END fwgen' without its '# BEGIN fwgen'"),
        (
            HEAD + "# BEGIN fwgen\n" + BLOCK,
            5,
            "'# BEGIN fwgen' again before the END of the block at line 4",
        ),
    ],
)
def test_broken_or_doubled_markers_are_refused_with_file_and_line(
    tmp_path: Path, text: str, line: int, what: str | None
) -> None:
    path = tmp_path / "after6.rules"
    path.write_text(text)
    with pytest.raises(FwgenError) as raised:
        check_markers(path)
    what = what or "'# BEGIN fwgen' without its '# END fwgen'"
    assert str(raised.value) == f"{path}:{line}: {what}: {FIX}"


def test_a_missing_file_has_no_block(tmp_path: Path) -> None:
    check_markers(tmp_path / "after6.rules")


LOADED = [
    "-P FORWARD DROP",
    "-N DOCKER-USER",
    "-N FWGEN-CONTAINERS",
    "-N FWGEN-ROUTED",
    "-N f2b-web",
    "-A FORWARD -j DOCKER-USER",
    "-A DOCKER-USER -p tcp -j f2b-web",
    "-A DOCKER-USER -j FWGEN-CONTAINERS",
    "-A FWGEN-CONTAINERS -o docker+ -g FWGEN-ROUTED",
    "-A FWGEN-ROUTED -j DROP",
]


class Kernel:
    """`iptables -S` from a list, and what is given to iptables-restore."""

    def __init__(self, listing: list[str]) -> None:
        self.listing = listing
        self.restored: list[str] = []

    def __call__(self, *cmd: str, stdin: Path | None = None, check: bool = True) -> str:
        if cmd[0].endswith("-restore"):
            assert stdin is not None
            self.restored.append(stdin.read_text())
            return ""
        assert cmd[1:] == ("-S",), cmd
        return "\n".join(self.listing) + "\n"


def test_the_container_chains_and_the_jumps_place_are_saved() -> None:
    assert container_state(Kernel(LOADED), "iptables") == [
        "-N FWGEN-CONTAINERS",
        "-N FWGEN-ROUTED",
        "-A FWGEN-CONTAINERS -o docker+ -g FWGEN-ROUTED",
        "-A FWGEN-ROUTED -j DROP",
        "-I DOCKER-USER 2 -j FWGEN-CONTAINERS",
    ]


def test_restored_where_they_were_after_a_load_that_deleted_them(tmp_path: Path) -> None:
    saved = container_state(Kernel(LOADED), "iptables")
    without = [line for line in LOADED if "FWGEN" not in line]
    kernel = Kernel(without)
    restore_container_state(kernel, "iptables", saved, tmp_path / "restore.rules")
    assert kernel.restored == [
        "*filter\n-N FWGEN-CONTAINERS\n-N FWGEN-ROUTED\n"
        "-A FWGEN-CONTAINERS -o docker+ -g FWGEN-ROUTED\n-A FWGEN-ROUTED -j DROP\n"
        "-I DOCKER-USER 2 -j FWGEN-CONTAINERS\nCOMMIT\n"
    ]


def test_removed_with_every_jump_when_there_were_none(tmp_path: Path) -> None:
    kernel = Kernel(LOADED)
    restore_container_state(kernel, "iptables", [], tmp_path / "restore.rules")
    assert kernel.restored == [
        "*filter\n-D DOCKER-USER -j FWGEN-CONTAINERS\n"
        "-D FWGEN-CONTAINERS -o docker+ -g FWGEN-ROUTED\n"
        "-F FWGEN-CONTAINERS\n-F FWGEN-ROUTED\n-X FWGEN-CONTAINERS\n-X FWGEN-ROUTED\nCOMMIT\n"
    ]


def test_nothing_to_do_without_chains_then_or_now(tmp_path: Path) -> None:
    kernel = Kernel([line for line in LOADED if "FWGEN" not in line])
    restore_container_state(kernel, "iptables", [], tmp_path / "restore.rules")
    assert kernel.restored == []
