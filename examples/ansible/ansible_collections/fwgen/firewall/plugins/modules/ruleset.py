#!/usr/bin/python
# Copyright: fwgen contributors
# MIT License (see the fwgen repository)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ruleset
short_description: Render, review and load a firewall made by fwgen
version_added: "0.1.0"
description:
  - Renders O(profile) for O(target) with the host's O(networks) and O(interfaces), on the
    managed host, with the C(fwgen) installed there.
  - When the rendered files differ from those installed in O(dest), loads them with
    C(fwgen apply --yes) (checked by the firewall's own checker, refused when the new rules
    would not admit a new connection from each O(keep) address or an admin connection fwgen
    finds, restored when loading fails), then installs them in O(dest) and records the
    inputs in O(record).
  - In check mode nothing is written or loaded. With diff mode it shows the semantic diff
    (C(fwgen diff) of the recorded inputs of the installed ruleset and the new ones, or
    C(fwgen explain) of the new ones on a first run) and the text diff of every file.
  - Fails, with fwgen's own line and nothing changed, on a broken profile, on what
    C(fwgen render --strict) refuses (O(strict)), on a rule that admits no one (networks that
    are placeholders or empty, an empty interface group) unless O(allow_placeholders), and
    on the iptables target's coexist mode, which netfilter-persistent cannot load.
author: fwgen contributors
options:
  profile:
    description:
      - A built-in profile name (C(webserver)), a profile file on the managed host, or,
        with O(site), a path inside O(site).
    type: str
    required: true
  site:
    description:
      - A folder on the managed host holding O(profile) and every file it reads (profiles
        it extends, address lists). It is copied whole into O(record), so that the next
        run's semantic diff compares with exactly what was installed.
    type: path
  target:
    description: The firewall to render for.
    type: str
    choices: [nftables, iptables, ufw, firewalld]
    default: nftables
  networks:
    description:
      - The host's networks, name to addresses (CIDRs); they replace the profile's.
    type: dict
    default: {}
  interfaces:
    description:
      - The host's interface groups, name to interface names; they replace the profile's.
    type: dict
    default: {}
  dest:
    description:
      - The folder the rendered files are installed in, each under the name fwgen gives it
        (C(fwgen.nft); C(rules.v4), C(rules.v6), C(ipsets); C(fwgen-ufw.sh); the firewalld
        zone files and C(fwgen-firewalld.sh)). A file installed by an earlier run that the
        new rendering no longer has is removed; no other file there is touched.
    type: path
    required: true
  record:
    description:
      - The folder where the inputs of the installed ruleset are kept (C(host.yaml), the
        profile file or the O(site) copy, C(files.json)); replaced whole after each change.
    type: path
    default: /var/lib/fwgen/ansible
  load:
    description:
      - V(apply) loads with C(fwgen apply --yes) and its lock-out guard. V(none) only installs
        the files (what loads them at boot loads them next).
    type: str
    choices: [apply, none]
    default: apply
  keep:
    description:
      - Addresses, C(ADDR[:PORT]), that the new rules must admit a new TCP connection from
        (C(fwgen apply --keep)); the role passes the controller's own SSH connection here.
    type: list
    elements: str
    default: []
  strict:
    description: Render with C(--strict), failing on what the target can only approximate.
    type: bool
    default: true
  allow_placeholders:
    description:
      - Let rules whose networks are documentation addresses or empty, or whose interface
        group is empty, pass (they admit no one).
    type: bool
    default: false
  executable:
    description: The fwgen command on the managed host.
    type: path
    default: fwgen
notes:
  - Supports check mode and diff mode.
  - Idempotent by content. The rendered files carry a hash of every input, so a run whose
    files equal the installed ones changes nothing.
requirements:
  - fwgen on the managed host
"""

EXAMPLES = r"""
- name: Firewall of a web server
  fwgen.firewall.ruleset:
    profile: webserver
    target: nftables
    networks:
      admins: [10.20.0.0/16, 2001:db8:20::/48]
    dest: /etc/nftables.d
    keep: ["192.0.2.10:22"]
"""

RETURN = r"""
files:
  description: The installed files (paths in O(dest)) of the new ruleset.
  returned: always
  type: list
  elements: str
semantic_diff:
  description: What changes in what is admitted (fwgen diff), or all of it on a first run.
  returned: changed
  type: str
applied:
  description: Output of C(fwgen apply) (its guard's report).
  returned: when loaded
  type: str
"""

import json
import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule

# Targets whose `render -o` takes a file: the name of that file. The others take a folder.
SINGLE_FILE = {"nftables": "fwgen.nft", "ufw": "fwgen-ufw.sh"}
# fwgen check's codes for a rule that admits no one: documentation addresses only (FW012),
# an empty network (FW008), an empty interface group (FW019).
ADMIT_NO_ONE = ("FW008", "FW012", "FW019")
HOST = "host.yaml"  # the host's profile: PROFILE extended with the host's networks
FILES = "files.json"  # the names of the installed files, relative to dest


def fwgen(module, *args, ok=(0,)):
    """Run fwgen from / and return (rc, stdout, stderr); fail on an exit code not in *ok*,
    with fwgen's own message (one line: file, line, what, the fix)."""
    command = [module.params["executable"], *args]
    rc, out, err = module.run_command(command, cwd="/", environ_update={"LC_ALL": "C.UTF-8"})
    if rc not in ok:
        module.fail_json(msg=(err or out).strip() or f"fwgen exited {rc}", rc=rc, cmd=command)
    return rc, out, err


def host_profile(module, work):
    """Write the host's profile into *work*: the profile (a copy of its file or its site
    folder beside it), extended with the host's networks and interface groups."""
    profile, site = module.params["profile"], module.params["site"]
    if site:
        if not os.path.isdir(site):
            module.fail_json(msg=f"site {site}: not a folder")
        shutil.copytree(site, os.path.join(work, "site"), symlinks=True)
        extends = "site/" + os.path.normpath(profile).lstrip("/")
    elif "/" in profile or profile.endswith((".yaml", ".yml")):
        if not os.path.isfile(profile):
            module.fail_json(msg=f"profile {profile}: no such file on the host")
        os.mkdir(os.path.join(work, "profile"))
        name = os.path.basename(profile)
        shutil.copyfile(profile, os.path.join(work, "profile", name))
        extends = "profile/" + name
    else:
        extends = profile  # a built-in profile
    document = {
        "description": f"{profile} with this host's networks (fwgen.firewall.ruleset)",
        "extends": extends,
    }
    for key in ("networks", "interfaces"):
        given = module.params[key]
        if given:
            document[key] = {
                name: as_list(module, key, name, value) for name, value in given.items()
            }
    path = os.path.join(work, HOST)
    with open(path, "w") as handle:  # JSON is YAML; sorted, so the same inputs give the same bytes
        handle.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return path


def as_list(module, key, name, value):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        module.fail_json(msg=f"{key}.{name}: give a list of strings, not {value!r}")
    return value


def render(module, host, out):
    """Render *host* into the folder *out*; {name relative to out: text}."""
    target = module.params["target"]
    single = SINGLE_FILE.get(target)
    args = ["render", host, "--target", target, "-o", os.path.join(out, single) if single else out]
    _, _, err = fwgen(module, *(args + (["--strict"] if module.params["strict"] else [])))
    for line in err.splitlines():
        if line.startswith("warning: "):
            module.warn("fwgen: " + line[len("warning: ") :])
    return read_tree(out)


def read_tree(root, names=None):
    """{relative name: text} of the regular files under *root* (only *names*, when given)."""
    found = {}
    if names is None:
        names = []
        for folder, _, files in os.walk(root):
            names += [os.path.relpath(os.path.join(folder, f), root) for f in files]
    for name in names:
        path = os.path.join(root, name)
        if os.path.isfile(path) and not os.path.islink(path):
            with open(path) as handle:
                found[name] = handle.read()
    return found


def refuse_admitting_no_one(module, host):
    if module.params["allow_placeholders"]:
        return
    _, out, _ = fwgen(module, "check", host, "--format", "json", ok=(0, 1))
    found = [f for f in json.loads(out)["findings"] if f["code"] in ADMIT_NO_ONE]
    if found:
        lines = ["{}: {}".format(f["location"], f["message"]) for f in found]
        module.fail_json(
            msg="rules that admit no one (give the host's real networks and interfaces, or set "
            "allow_placeholders): " + "; ".join(lines)
        )


def semantic_diff(module, host, record):
    """What the change does to what is admitted: fwgen diff of the recorded inputs and the
    new ones, or fwgen explain of the new ones when nothing is recorded."""
    old = os.path.join(record, HOST)
    if os.path.isfile(old):
        _, out, _ = fwgen(module, "diff", old, host, ok=(0, 1))
        return "What the rules admit, installed -> new (fwgen diff):\n" + out
    _, out, _ = fwgen(module, "explain", host)
    heading = f"What the rules admit, all new (fwgen explain; nothing recorded in {record}):\n"
    return heading + out


def text_diffs(dest, old, new):
    diffs = []
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            path = os.path.join(dest, name)
            diffs.append(
                {
                    "before_header": path if name in old else f"{path} (absent)",
                    "after_header": path if name in new else f"{path} (removed)",
                    "before": old.get(name, ""),
                    "after": new.get(name, ""),
                }
            )
    return diffs


def install(module, dest, new, old_names):
    """Each new file in place whole (a rename in its folder), then remove the files an
    earlier run installed that the new rendering does not have."""
    for name, text in sorted(new.items()):
        path = os.path.join(dest, name)
        folder = os.path.dirname(path)
        if not os.path.isdir(folder):
            os.makedirs(folder, 0o700)
        handle, staged = tempfile.mkstemp(dir=folder, prefix=".fwgen-")
        with os.fdopen(handle, "w") as out:
            out.write(text)
        mode = 0o700 if name.endswith(".sh") else 0o600
        os.chmod(staged, mode)
        module.atomic_move(staged, path)
        os.chmod(path, mode)  # atomic_move gives a new file the umask's mode
    for name in sorted(set(old_names) - set(new)):
        path = os.path.join(dest, name)
        if os.path.isfile(path) and not os.path.islink(path):
            os.unlink(path)


def save_record(module, work, record, names):
    """Replace *record* with the inputs in *work* and the installed names."""
    with open(os.path.join(work, FILES), "w") as handle:
        handle.write(json.dumps(sorted(names)) + "\n")
    parent = os.path.dirname(record.rstrip("/"))
    if not os.path.isdir(parent):
        os.makedirs(parent, 0o700)
    staged = tempfile.mkdtemp(dir=parent, prefix=".fwgen-record-")
    for name in os.listdir(work):
        if name != "rendered":
            source = os.path.join(work, name)
            if os.path.isdir(source):
                shutil.copytree(source, os.path.join(staged, name), symlinks=True)
            else:
                shutil.copyfile(source, os.path.join(staged, name))
    if os.path.isdir(record):
        old = tempfile.mkdtemp(dir=parent, prefix=".fwgen-old-")
        os.rename(record, os.path.join(old, "record"))
        os.rename(staged, record)
        shutil.rmtree(old)
    else:
        os.rename(staged, record)


def recorded_names(record):
    try:
        with open(os.path.join(record, FILES)) as handle:
            return [str(n) for n in json.load(handle)]
    except (OSError, ValueError):
        return []


def main():
    module = AnsibleModule(
        argument_spec={
            "profile": {"type": "str", "required": True},
            "site": {"type": "path"},
            "target": {
                "type": "str",
                "default": "nftables",
                "choices": ["nftables", "iptables", "ufw", "firewalld"],
            },
            "networks": {"type": "dict", "default": {}},
            "interfaces": {"type": "dict", "default": {}},
            "dest": {"type": "path", "required": True},
            "record": {"type": "path", "default": "/var/lib/fwgen/ansible"},
            "load": {"type": "str", "default": "apply", "choices": ["apply", "none"]},
            "keep": {"type": "list", "elements": "str", "default": []},
            "strict": {"type": "bool", "default": True},
            "allow_placeholders": {"type": "bool", "default": False},
            "executable": {"type": "path", "default": "fwgen"},
        },
        supports_check_mode=True,
    )
    params = module.params
    if "/" not in params["executable"]:
        params["executable"] = module.get_bin_path(params["executable"], required=True)
    dest, record, target = params["dest"], params["record"], params["target"]
    work = tempfile.mkdtemp(dir=module.tmpdir, prefix="fwgen-")  # removed with module.tmpdir
    host = host_profile(module, work)
    refuse_admitting_no_one(module, host)
    os.mkdir(os.path.join(work, "rendered"))
    new = render(module, host, os.path.join(work, "rendered"))
    if target == "iptables" and "fwgen-iptables.sh" in new:
        module.fail_json(
            msg="{} shares the filter table (containers: or coexist:): its rules.v4 and rules.v6 "
            "hold only fwgen's chains, loaded with --noflush by fwgen-iptables.sh, never as "
            "netfilter-persistent's files; use target nftables".format(params["profile"])
        )
    old_names = recorded_names(record)
    old = read_tree(dest, sorted(set(old_names) | set(new)))
    files = [os.path.join(dest, name) for name in sorted(new)]
    changed = old != new or not os.path.isfile(os.path.join(record, HOST))
    result = {"changed": changed, "files": files}
    if not changed:
        module.exit_json(**result)
    result["semantic_diff"] = semantic_diff(module, host, record)
    if module._diff:
        result["diff"] = [{"prepared": result["semantic_diff"]}, *text_diffs(dest, old, new)]
    if module.check_mode:
        module.exit_json(**result)
    if params["load"] == "apply":
        args = ["apply", host, "--target", target, "--yes"]
        args += ["--strict"] if params["strict"] else []
        args += ["--keep=" + k for k in params["keep"]]
        _, out, err = fwgen(module, *args)
        result["applied"] = (out + err).strip()
    install(module, dest, new, old_names)
    save_record(module, work, record, new)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
