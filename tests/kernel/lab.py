"""The product's lab (fwgen.lab.netns) with the tests' Docker host: a container behind
Docker's bridge and Docker's recorded rules (docker_lab.py)."""

from __future__ import annotations

from dataclasses import dataclass

from fwgen.lab import netns
from fwgen.lab.netns import AGENT as AGENT
from fwgen.lab.netns import PREFIX as PREFIX
from fwgen.lab.netns import UFW_WRITES as UFW_WRITES
from fwgen.lab.netns import Client as Client
from fwgen.lab.netns import missing_tools as missing_tools
from tests.kernel.docker_lab import CONTAINER_IPV4 as CONTAINER_IPV4  # where tests found it
from tests.kernel.docker_lab import DockerHost


@dataclass
class Lab(netns.Lab, DockerHost):
    """Throw-away namespaces (`fwgen.lab.netns.Lab`), and a Docker host on demand."""
