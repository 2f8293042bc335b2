"""fwgen: declarative host profiles rendered into default-deny firewall rulesets.

The library API touches no argv and, apart from reading profiles, no files::

    import fwgen
    policy = fwgen.resolve_profile("webserver", overrides={"admins": ["192.0.2.0/24"]})
    files = fwgen.render(policy, "nftables")      # {file name: text}

The package follows the pipeline, one folder per stage; a stage imports only those
below it (checked by import-linter, see pyproject.toml):

    read/      every byte fwgen reads: YAML, paths and boundaries, git revisions
    profile/   what users write: models, fields, extends/load, finding codes, port database
    policy/    the IR (policy/ir.py) and how it is made: resolve, networks, accepted findings
    targets/   the registry, one module per firewall, text safety, compiled templates
    review/    check, diff, explain
    host/      apply and its backends, the lock-out guard, audit, discover
    build/     many hosts at once (the manifest), writing results
    cli/       the ``fwgen`` command, one module per command group
    errors.py, runner.py, table.py   the exception root, running commands, text tables
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.5.0"

__all__ = ["FwgenError", "__version__", "render", "resolve_profile"]

if TYPE_CHECKING:
    from fwgen.errors import FwgenError
    from fwgen.policy.resolve import resolve_profile
    from fwgen.targets.render import render


def __getattr__(name: str) -> Any:
    # Imported on first use so that `fwgen --help` does not pay for pydantic and Jinja.
    if name == "render":
        from fwgen.targets.render import render

        return render
    if name == "resolve_profile":
        from fwgen.policy.resolve import resolve_profile

        return resolve_profile
    if name == "FwgenError":
        from fwgen.errors import FwgenError

        return FwgenError
    raise AttributeError(name)
