"""fwgen: declarative host profiles rendered into default-deny firewall rulesets.

The library API touches no argv and, apart from reading profiles, no files::

    import fwgen
    policy = fwgen.resolve_profile("webserver", overrides={"admins": ["192.0.2.0/24"]})
    files = fwgen.render(policy, "nftables")      # {file name: text}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

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
