"""The real firewalld in the lab (fwgen.lab.firewalld), started for a test on demand."""

from __future__ import annotations

from fwgen.lab.firewalld import FIREWALLD_TOOLS as FIREWALLD_TOOLS
from fwgen.lab.firewalld import Firewalld as Firewalld
from fwgen.lab.firewalld import missing_firewalld as missing_firewalld
from tests.kernel.conftest import need
from tests.kernel.lab import Lab


def started(lab: Lab) -> Firewalld:
    """The firewalld of *lab*, started now if it has none (stopped with the lab)."""
    if lab.firewalld is None:
        need(missing_firewalld())
        Firewalld(lab).start()
    assert isinstance(lab.firewalld, Firewalld)
    return lab.firewalld
