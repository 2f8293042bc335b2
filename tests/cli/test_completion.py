"""Shell completion, judged by the shells themselves: bash runs the script's function with
COMP_WORDS, COMP_CWORD, COMP_LINE and COMP_POINT as bash sets them, fish answers
``complete -C``, and zsh runs the function with its completion builtins recorded.
Each calls the fwgen under test through a ``fwgen`` on PATH."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fwgen.cli.completion import help_choices, split_line
from fwgen.cli.completion_scripts import SCRIPTS

BUILTINS = sorted(p.stem for p in (Path(__file__).parents[2] / "profiles").glob("*.yaml"))
WORDBREAKS = "=:"  # where bash ends a word besides blanks (of COMP_WORDBREAKS, those fwgen meets)


def _shell(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("FWGEN_REQUIRE_KERNEL") == "1":
            pytest.fail(f"{name} is not installed (.ci/run installs it)")
        pytest.skip(f"{name} is not installed")
    return found


@pytest.fixture(scope="module")
def path_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment whose ``fwgen`` is the one under test."""
    bin_dir = tmp_path_factory.mktemp("bin")
    wrapper = bin_dir / "fwgen"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m fwgen "$@"\n')
    wrapper.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def bash_words(line: str) -> list[str]:
    """COMP_WORDS as bash splits *line*: at blanks, and '=' and ':' as words of their own;
    the cursor's word is empty after a blank, and is '=' right after one."""
    words: list[str] = []
    for blank_word in line.split(" "):
        part = ""
        for char in blank_word:
            if char in WORDBREAKS:
                words += [part] if part else []
                words.append(char)
                part = ""
            else:
                part += char
        words += [part] if part else []
    return [*words, ""] if line.endswith(" ") else words


def bash(line: str, env: dict[str, str], cwd: Path | None = None) -> list[str]:
    """COMPREPLY for the cursor at the end of *line*."""
    words = bash_words(line)
    script = (
        f"{SCRIPTS['bash']}\n"
        f"COMP_WORDS=({' '.join(_quote(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\nCOMP_LINE={_quote(line)}\nCOMP_POINT={len(line)}\n"
        '_fwgen_completion fwgen "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"\n'
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    return [w for w in run([_shell("bash"), "--norc", "-c", script], env, cwd) if w]


def run(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> list[str]:
    """The lines a shell prints (it must succeed)."""
    out = subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=cwd, check=True, timeout=60
    )
    return out.stdout.splitlines()


def _quote(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


def test_bash_completes_commands_and_options(path_env: dict[str, str]) -> None:
    assert bash("fwgen re", path_env) == ["render"]
    assert {"render", "check", "diff", "completion", "shadow"} <= set(bash("fwgen ", path_env))
    assert bash("fwgen shadow st", path_env) == ["start", "stop"]
    options = bash("fwgen render webserver --s", path_env)
    assert set(options) == {"--set", "--strict", "--sets-only"}


def test_bash_completes_builtin_profiles_and_profile_files(
    tmp_path: Path, path_env: dict[str, str]
) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "web-edge.yaml").write_text("extends: webserver\n")
    (tmp_path / "web-notes.txt").write_text("")
    assert bash("fwgen render web", path_env, tmp_path) == ["webserver", "web-edge.yaml"]
    everything = bash("fwgen check ", path_env, tmp_path)
    assert set(BUILTINS) <= set(everything) and {"site", "web-edge.yaml"} <= set(everything)
    assert "web-notes.txt" not in everything
    assert bash("fwgen diff webserver data", path_env, tmp_path) == ["database"]


def test_bash_completes_targets_as_the_command_takes_them(path_env: dict[str, str]) -> None:
    assert bash("fwgen render webserver -t ", path_env) == [
        "nftables",
        "iptables",
        "ufw",
        "windows",
        "firewalld",
    ]
    assert bash("fwgen render webserver --target i", path_env) == ["iptables"]
    assert bash("fwgen render webserver --target=nf", path_env) == ["nftables"]
    # a shadow runs on nftables or iptables only
    assert bash("fwgen shadow start webserver -t ", path_env) == ["nftables", "iptables"]


def test_bash_completes_set_with_the_networks_of_the_profile_on_the_line(
    tmp_path: Path, path_env: dict[str, str]
) -> None:
    assert bash("fwgen render database --set ", path_env) == ["admins=", "app=", "private="]
    assert bash("fwgen render -t nftables webserver --set ", path_env) == ["admins="]
    assert bash("fwgen render bastion --set i", path_env) == ["internal="]
    # networks from the whole extends chain of a site file, given before or after --set
    (tmp_path / "edge.yaml").write_text(
        "extends: webserver\nnetworks:\n  office: [192.0.2.0/24]\ninterfaces:\n  lan: [eth1]\n"
    )
    found = bash("fwgen check edge.yaml --set ", path_env, tmp_path)
    assert found == ["admins=", "lan=", "office="]
    # a profile that does not load offers nothing, and says nothing
    (tmp_path / "broken.yaml").write_text("networks: [\n")
    assert bash("fwgen render broken.yaml --set ", path_env, tmp_path) == []


def test_bash_completes_choices_and_option_values_after_equals(path_env: dict[str, str]) -> None:
    assert bash("fwgen check webserver --format ", path_env) == ["text", "json", "sarif"]
    assert bash("fwgen diff a b --format m", path_env) == ["markdown"]
    assert bash("fwgen check --format=js", path_env) == ["json"]
    # bash's word is '=' right after it: the reply keeps it
    assert bash("fwgen check --format=", path_env) == ["=text", "=json", "=sarif"]
    assert bash("fwgen render webserver --family ", path_env) == ["ipv4", "ipv6"]
    assert bash("fwgen completion ", path_env) == ["bash", "zsh", "fish"]


def test_bash_global_flags_anywhere_and_before_a_command(path_env: dict[str, str]) -> None:
    assert bash("fwgen -q --debug render -t ", path_env)[:1] == ["nftables"]
    assert bash("fwgen render webserver -q --set ", path_env) == ["admins="]
    assert {"--debug", "--quiet"} <= set(bash("fwgen render webserver --", path_env))


def test_bash_an_option_given_twice_while_typing_says_nothing(path_env: dict[str, str]) -> None:
    assert bash("fwgen render webserver -t nftables -t u", path_env) == ["ufw"]


def test_bash_hostile_file_names_are_offered_as_they_are(
    tmp_path: Path, path_env: dict[str, str]
) -> None:
    (tmp_path / "a*b $(touch pwned).yaml").write_text("")
    (tmp_path / "x.yaml").write_text("")
    found = bash("fwgen render ", path_env, tmp_path)
    assert "a*b $(touch pwned).yaml" in found and "x.yaml" in found
    assert not (tmp_path / "pwned").exists()


def test_fish_completes_profiles_targets_and_set(tmp_path: Path, path_env: dict[str, str]) -> None:
    fish = _shell("fish")
    (tmp_path / "edge.yaml").write_text("extends: database\n")

    def complete(line: str) -> list[str]:
        script = f"{SCRIPTS['fish']}\ncomplete -C {_quote(line)}"
        lines = run([fish, "--no-config", "-c", script], path_env, tmp_path)
        return [row.split("\t")[0] for row in lines if row]

    assert complete("fwgen render web") == ["webserver"]
    assert complete("fwgen render ed") == ["edge.yaml"]
    assert complete("fwgen render edge.yaml --set ") == ["admins=", "app=", "private="]
    assert complete("fwgen shadow start x -t ") == ["iptables", "nftables"]  # fish sorts


def test_zsh_script_describes_values_and_leaves_files_to_zsh(path_env: dict[str, str]) -> None:
    zsh = _shell("zsh")
    recorder = r"""
compdef() { print -r -- "compdef $*" }
_describe() { print -r -- "describe ${(j:|:)${(P)4}} ${@[5,-1]}" }
_files() { print -r -- "files $*" }
"""
    calls = (
        "words=(fwgen render web); CURRENT=3; PREFIX=web; _fwgen\n"
        "words=(fwgen render database --set ''); CURRENT=5; PREFIX=''; _fwgen\n"
        "words=(fwgen check --format ''); CURRENT=4; PREFIX=''; _fwgen\n"
    )
    out = run([zsh, "-f", "-c", f"{recorder}\n{SCRIPTS['zsh']}\n{calls}"], path_env)
    assert out[0] == "compdef _fwgen fwgen"
    assert out[1] == "files -g *.(yaml|yml)"
    assert out[2].startswith("describe webserver:Public web server")
    assert out[3].startswith("describe admins=:network: 198.51.100.0/24") and out[3].endswith("-S ")
    assert out[3].count("|") == 2  # admins, app, private; no space after their '='
    assert out[4] == "describe text:|json:|sarif: "


def test_the_completion_command_prints_each_script_and_refuses_another_shell(
    path_env: dict[str, str],
) -> None:
    for shell, script in SCRIPTS.items():
        out = subprocess.run(
            ["fwgen", "completion", shell],
            capture_output=True,
            text=True,
            env=path_env,
            check=True,
            timeout=60,
        )
        assert out.stdout == script
    bad = subprocess.run(
        ["fwgen", "completion", "tcsh"], capture_output=True, text=True, env=path_env, timeout=60
    )
    assert bad.returncode == 2
    assert bad.stderr == "error: completion 'tcsh': choose bash, zsh, fish\n"


def _imported_while_completing(line: str, env: dict[str, str]) -> set[str]:
    probe = (
        "import sys\nfrom fwgen.cli.app import main\ntry:\n    main()\nexcept SystemExit:\n"
        "    pass\nprint(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "_FWGEN_COMPLETE": "bash", "_FWGEN_COMPLETE_LINE": line},
    )
    return set(out.stderr.split())


def test_completion_loads_the_profile_models_only_for_set(path_env: dict[str, str]) -> None:
    heavy = {"fwgen.profile.models", "fwgen.policy.ir", "jinja2", "fwgen.targets.render"}
    for line in ("fwgen ", "fwgen render ", "fwgen render webserver -t ", "fwgen check --format "):
        assert not heavy & _imported_while_completing(line, path_env), line
    assert "fwgen.profile.models" in _imported_while_completing(
        "fwgen render webserver --set ", path_env
    )


def test_an_unknown_shell_in_the_variable_is_one_line(path_env: dict[str, str]) -> None:
    out = subprocess.run(
        ["fwgen"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**path_env, "_FWGEN_COMPLETE": "tcsh\n", "_FWGEN_COMPLETE_LINE": "fwgen "},
    )
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == "error: _FWGEN_COMPLETE='tcsh?': use bash, zsh or fish\n"


@pytest.mark.parametrize(
    ("line", "words", "incomplete"),
    [
        ("fwgen ", [], ""),
        ("fwgen render web", ["render"], "web"),
        ("fwgen render 'my site/we", ["render"], "my site/we"),
        ("fwgen render 'my site/web.yaml' ", ["render", "my site/web.yaml"], ""),
    ],
)
def test_the_line_is_split_as_the_shell_quotes_it(
    line: str, words: list[str], incomplete: str
) -> None:
    assert split_line(line) == (words, incomplete)


def test_choices_are_read_from_the_help_fwgen_writes() -> None:
    assert help_choices("text, json or sarif.") == ["text", "json", "sarif"]
    assert help_choices("yaml (the draft profile) or json (the listeners and the draft).") == [
        "yaml",
        "json",
    ]


def test_bash_completes_at_a_real_prompt(path_env: dict[str, str], tmp_path: Path) -> None:
    """An interactive bash on a terminal: readline inserts what the script offers."""
    master, slave = pty.openpty()
    env = {
        **path_env,
        "PS1": "READY> ",
        "TERM": "dumb",
        "INPUTRC": "/dev/null",
        "HOME": str(tmp_path),
    }
    shell = subprocess.Popen(
        [_shell("bash"), "--norc", "--noprofile", "-i"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )
    os.close(slave)

    def typed(keys: str, until: str) -> str:
        os.write(master, keys.encode())
        seen = b""
        deadline = time.monotonic() + 30
        while until.encode() not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
        return seen.decode(errors="replace")

    try:
        typed("source <(fwgen completion bash); echo LOADED\n", "LOADED\r\nREADY> ")
        assert "fwgen render " in typed("fwgen ren\t", "render ")
        assert "-t nftables " in typed("webserver -t nf\t", "nftables ")
        typed("\x15", "\r")  # ^U: a new line
        line = typed("fwgen render database --set ad\t", "admins=")
        assert line.endswith("admins="), line  # no space: the addresses come next
    finally:
        os.write(master, b"\x15exit\n")
        shell.wait(timeout=30)
        os.close(master)
