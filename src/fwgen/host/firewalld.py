"""`fwgen apply -t firewalld`: fwgen's files in /etc/firewalld, then a reload.

firewalld keeps two configurations: the permanent one (XML files in /etc/firewalld) and
the runtime one (what the daemon enforces now). A load runs the rendered install script
(`SCRIPT`), which puts fwgen's own files in place (a zone, its ipsets and policies,
every one named ``fwgen*``), removes fwgen's files the new rules no longer have, runs
``firewall-cmd --reload`` (the permanent configuration becomes the runtime one) and
makes fwgen's zone the default zone. No other zone, policy or ipset file is written.
`validate` runs the script with ``--check`` first: its refusals come before anything
is saved or loaded.

The saved state is fwgen's files as they were, ``firewalld.conf`` (the default zone
lives there), and the runtime, which a reload rebuilds from the permanent configuration:
so the runtime may be saved only when it *is* the permanent configuration. A runtime
change that was never made permanent (``firewall-cmd --add-service`` without
``--permanent``, a fail2ban ban through firewall-cmd) would be lost by the load's reload
and could not be given back by the rollback's: the apply is refused, naming it, before
anything changes. Interfaces are left out of that comparison: firewalld itself puts
NetworkManager's interfaces back after a reload.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from xml.etree import ElementTree

from fwgen import runner
from fwgen.host.backends import ApplyError, Backend, run, write_private

ETC = Path("/etc/firewalld")
SCRIPT = "fwgen-firewalld.sh"  # the install script `fwgen render -t firewalld` writes
CONF = ETC / "firewalld.conf"
# The root element of each kind of file firewalld reads → its folder in /etc/firewalld.
FOLDERS = {
    "zone": "zones",
    "ipset": "ipsets",
    "policy": "policies",
    "service": "services",
    "helper": "helpers",
    "icmptype": "icmptypes",
}
OURS = re.compile(r"^fwgen[A-Za-z0-9_-]*\.xml$")  # the names of fwgen's files, nothing else
NOT_RUNNING = 252  # firewall-cmd's exit code when the daemon does not run
# A reload puts NetworkManager's interfaces back itself; "(active)" says only what is bound.
INTERFACES = re.compile(r"^\s*interfaces:")
MARKS = re.compile(r"\s+\((?:active|default)(?:, ?(?:active|default))?\)\s*$")


def placements(files: dict[str, str]) -> dict[str, str]:
    """Where each rendered XML file goes: ``/etc/firewalld/<folder>/<name>`` → text, the
    folder chosen by the file's root element. A name that is not fwgen's (``fwgen*.xml``)
    or a root element firewalld does not read is refused: a load never writes another
    owner's zone."""
    placed: dict[str, str] = {}
    for name, text in sorted(files.items()):
        if not name.endswith(".xml"):
            continue
        base = name.rsplit("/", 1)[-1]
        if not OURS.match(base):
            raise ApplyError(f"{name}: not one of fwgen's file names (fwgen*.xml)")
        try:
            kind = ElementTree.fromstring(text).tag
        except ElementTree.ParseError as error:
            raise ApplyError(f"{name}: not XML ({error})") from None
        if kind not in FOLDERS:
            raise ApplyError(f"{name}: <{kind}> is not a firewalld configuration file")
        placed[str(ETC / FOLDERS[kind] / base)] = text
    if not placed:
        raise ApplyError("the rendered files hold no firewalld configuration (*.xml)")
    return placed


def ours(etc: Path = ETC) -> list[Path]:
    """fwgen's files in a firewalld configuration folder *etc*, as they are now."""
    return sorted(p for folder in FOLDERS.values() for p in (etc / folder).glob("fwgen*.xml"))


def _blocks(kind: str, text: str) -> dict[str, list[str]]:
    """A listing of zones or policies → {"zone NAME": its lines}, interfaces left out."""
    found = {}
    for block in re.split(r"\n\s*\n", text.strip()):
        head, *lines = block.splitlines()
        found[f"{kind} {MARKS.sub('', head).strip()}"] = [
            line.strip() for line in lines if not INTERFACES.match(line)
        ]
    return found if text.strip() else {}


def _listings(permanent: bool) -> dict[str, list[str]]:
    """Everything firewall-cmd lists of one configuration, interfaces left out."""
    flag = ["--permanent"] if permanent else []
    found = _blocks("zone", run("firewall-cmd", *flag, "--list-all-zones"))
    found |= _blocks("policy", run("firewall-cmd", *flag, "--list-all-policies"))
    for what in ("chains", "rules", "passthroughs"):
        lines = run("firewall-cmd", *flag, "--direct", f"--get-all-{what}").splitlines()
        if any(line.strip() for line in lines):
            found[f"direct {what}"] = [line.strip() for line in lines if line.strip()]
    for name in run("firewall-cmd", *flag, "--get-ipsets").split():
        found[f"ipset {name}"] = run("firewall-cmd", *flag, f"--info-ipset={name}").splitlines()
    return found


def runtime_only() -> list[str]:
    """Where the runtime and the permanent configuration differ, one line each: what a
    reload would drop ("runtime only") or bring in ("permanent only")."""
    runtime, permanent = _listings(False), _listings(True)
    lines = []
    for key in sorted(set(runtime) | set(permanent)):
        if key not in permanent or key not in runtime:
            lines.append(f"{key}: {'runtime' if key in runtime else 'permanent'} only")
            continue
        lines += [f"{key}: runtime only: {x}" for x in runtime[key] if x not in permanent[key]]
        lines += [f"{key}: permanent only: {x}" for x in permanent[key] if x not in runtime[key]]
    return lines


def _rendered(work: Path) -> dict[str, str]:
    new = work / "new"
    return {
        str(p.relative_to(new)): p.read_text(encoding="utf-8")
        for p in new.rglob("*")
        if p.is_file()
    }


class Firewalld(Backend):
    """firewalld's permanent files of fwgen, then a reload (see the module's doc)."""

    name = "firewalld"
    tools = ("firewall-cmd", "firewall-offline-cmd", "bash")
    replaces = "fwgen's files in /etc/firewalld and firewalld's runtime"

    def validate(self, work: Path) -> None:
        """firewalld's own check of the whole configuration as it would be: a copy of
        /etc/firewalld with fwgen's files replaced, checked by firewall-offline-cmd; then
        the install script's own refusals (``--check``: another zone holding traffic or an
        interface fwgen's zones are bound to, a file named as fwgen's it did not write)."""
        script = str(work / "new" / SCRIPT)
        run("bash", "-n", script)
        placed = placements(_rendered(work))
        with tempfile.TemporaryDirectory(prefix="fwgen-firewalld-") as folder:
            copy = Path(folder) / "etc"
            shutil.copytree(ETC, copy, symlinks=True)
            for old in ours(copy):
                old.unlink()
            for path, text in placed.items():
                write_private(copy / Path(path).relative_to(ETC), text)
            run("firewall-offline-cmd", f"--system-config={copy}", "--check-config")
        run("bash", script, "--check")

    def save(self, work: Path) -> None:
        state = runner.run(("firewall-cmd", "--state"), timeout=60)
        if state.returncode == NOT_RUNNING:
            raise ApplyError(
                "firewalld is not running: start it (systemctl start firewalld), or render "
                "with -o DIR and install the files with DIR's script"
            )
        drift = runtime_only()
        if drift:
            shown = "; ".join(drift[:5]) + (
                f"; and {len(drift) - 5} more" if len(drift) > 5 else ""
            )
            raise ApplyError(
                f"firewalld's runtime differs from its permanent configuration ({shown}); the "
                "reload of this apply (and of its rollback) would change that too: make the "
                "runtime permanent (firewall-cmd --runtime-to-permanent) or load the permanent "
                "configuration (firewall-cmd --reload) first"
            )
        saved = work / "saved"
        for path in ours():
            write_private(saved / "files" / path.relative_to(ETC), path.read_text(encoding="utf-8"))
        write_private(saved / "firewalld.conf", CONF.read_text(encoding="utf-8"))
        write_private(saved / "conf-mode.json", json.dumps(CONF.stat().st_mode & 0o7777))
        write_private(saved / "had.json", json.dumps([str(p) for p in ours()]))

    def load(self, work: Path) -> None:
        run("bash", str(work / "new" / SCRIPT))

    def restore(self, work: Path) -> None:
        saved = work / "saved"
        # written in place (firewalld writes a new file, mode 0600, when it sets a default zone)
        CONF.write_text((saved / "firewalld.conf").read_text(encoding="utf-8"), encoding="utf-8")
        CONF.chmod(json.loads((saved / "conf-mode.json").read_text(encoding="utf-8")))
        had = json.loads((saved / "had.json").read_text(encoding="utf-8"))
        self._put_back(
            {
                name: (saved / "files" / Path(name).relative_to(ETC)).read_text("utf-8")
                for name in had
            }
        )

    def _put_back(self, placed: dict[str, str]) -> None:
        """fwgen's files become exactly *placed* (each written whole, then renamed), and
        firewalld reloads them with the saved firewalld.conf (its default zone)."""
        try:
            for old in ours():
                if str(old) not in placed:
                    old.unlink()
            for name, text in placed.items():
                path = Path(name)
                temporary = path.with_name(f"{path.name}.fwgen-new")  # as the script's
                temporary.write_text(text, encoding="utf-8")
                temporary.chmod(0o644)
                temporary.rename(path)
        except OSError as error:  # a full disk, a read-only /etc
            raise ApplyError(f"writing {error.filename}: {error.strerror}") from None
        run("firewall-cmd", "--reload")
