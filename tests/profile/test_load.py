from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fwgen.errors import FwgenErrors, ProfileError
from fwgen.profile.load import load_profile


def test_extends_merges_left_to_right_child_last(write_profile: Callable[..., Path]) -> None:
    write_profile("description: a\ninbound: [{service: http}]\noptions: {ping: true}\n", "a.yaml")
    write_profile(
        "description: b\ninbound: [{service: https}]\noptions: {ping: false, log_drops: true}\n",
        "b.yaml",
    )
    child = write_profile("description: c\nextends: [a, b]\ninbound: [{service: ssh}]\n", "c.yaml")
    merged = load_profile(str(child))
    assert [r.value.service for r in merged.inbound] == [["http"], ["https"], ["ssh"]]
    assert merged.options["ping"].value is False  # b overrides a
    assert merged.options["log_drops"].value is True
    assert merged.description == "c"
    assert [Path(f).name for f in merged.files] == ["a.yaml", "b.yaml", "c.yaml"]


def test_a_profile_reached_twice_is_loaded_once(write_profile: Callable[..., Path]) -> None:
    write_profile("description: common\ninbound: [{service: http}]\n", "common.yaml")
    write_profile("description: l\nextends: common\n", "left.yaml")
    write_profile("description: r\nextends: common\n", "right.yaml")
    top = write_profile("description: t\nextends: [left, right]\n", "top.yaml")
    merged = load_profile(str(top))
    assert len(merged.inbound) == 1


def test_extends_cycle_is_an_error_at_the_extends_line(write_profile: Callable[..., Path]) -> None:
    write_profile("description: a\nextends: b\n", "a.yaml")
    b = write_profile("description: b\ninbound: []\nextends: a\n", "b.yaml")
    with pytest.raises(ProfileError) as err:
        load_profile(str(b))
    assert "cannot extend each other in a cycle" in str(err.value)
    assert "a.yaml:2: extends:" in str(err.value)


def test_missing_extends_target_names_the_line(write_profile: Callable[..., Path]) -> None:
    path = write_profile("description: x\nextends: webservr\n")
    with pytest.raises(ProfileError) as err:
        load_profile(str(path))
    assert str(err.value).startswith(
        f"{path.name}:2: extends: unknown profile 'webservr' (did you mean 'webserver'?)"
    )


def test_all_validation_errors_are_reported_together(write_profile: Callable[..., Path]) -> None:
    path = write_profile(
        """\
        description: x
        inbound:
          - service: ssh
            frm: admins
          - port: 99999/tcp
            name: bad
        """
    )
    with pytest.raises(FwgenErrors) as err:
        load_profile(str(path))
    lines = str(err.value).splitlines()
    assert lines == [
        f"{path.name}:4: inbound[0].frm: unknown key 'frm' (did you mean 'from'?)",
        f"{path.name}:5: inbound[1].port: invalid port '99999/tcp'; ports are 1-65535",
    ]


def test_builtin_profiles_extend_base() -> None:
    merged = load_profile("webserver")
    assert merged.files == ["profiles/base.yaml", "profiles/webserver.yaml"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "inbound:\n  - service: ssh\n    from: 10.0.0.0/8, 192.168.1.0/24\n",
            "p.yaml:4: inbound[0].from: '10.0.0.0/8, 192.168.1.0/24' holds several addresses "
            "in one string; write a YAML list: [10.0.0.0/8, 192.168.1.0/24]",
        ),
        (
            "networks:\n  lan: 10.0.0.0/8,192.168.1.0/24\n",
            "p.yaml:3: networks.lan: '10.0.0.0/8,192.168.1.0/24' holds several addresses "
            "in one string; write a YAML list: [10.0.0.0/8, 192.168.1.0/24]",
        ),
    ],
)
def test_several_addresses_in_one_string_ask_for_a_yaml_list(
    tmp_path: Path, text: str, message: str
) -> None:
    from typer.testing import CliRunner

    from fwgen.cli.app import app

    (tmp_path / "p.yaml").write_text("description: x\n" + text)
    result = CliRunner().invoke(app, ["check", str(tmp_path / "p.yaml")])
    assert result.exit_code == 2
    assert result.stderr == f"error: {message}\n"


def test_several_addresses_on_one_line_of_a_list_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fwgen.cli.app import app

    (tmp_path / "lan.txt").write_text("10.0.0.0/8, 192.168.1.0/24\n")
    (tmp_path / "p.yaml").write_text(
        "description: x\nnetworks:\n  lan: [{file: lan.txt}]\ninbound: [{service: ssh, from: lan}]\n"
    )
    result = CliRunner().invoke(app, ["check", str(tmp_path / "p.yaml")])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: lan.txt:1: several addresses on one line; write one address or CIDR per line\n"
    )
