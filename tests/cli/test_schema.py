"""The JSON Schemas (`fwgen schema`) are the models' own, accept every file fwgen ships or
tests as good, and refuse what the loader refuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from fwgen.build.manifest import read_manifest
from fwgen.cli import schema
from fwgen.cli.app import app
from fwgen.errors import FwgenError
from fwgen.policy.resolve import resolve_profile
from fwgen.profile.load import load_profile
from fwgen.profile.portdb import read_catalogue
from tests.conftest import REPO

runner = CliRunner()
STALE = "a schema differs from the models: run `python -m fwgen.cli.schema`"

# Every profile fwgen ships, and every profile the tests and examples hold as good.
PROFILES = sorted(
    str(p.relative_to(REPO))
    for folder in (
        "profiles",
        "tests/data/good",
        "tests/data/kernel",
        "tests/data/review",
        "examples/site/profiles",
    )
    for p in (REPO / folder).glob("*.yaml")
)


def validator(kind: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(schema.shipped(kind)))


def errors(kind: str, data: Any) -> list[str]:
    return [e.message for e in validator(kind).iter_errors(data)]


@pytest.mark.parametrize("kind", sorted(schema.KINDS))
def test_shipped_schemas_are_in_sync_with_the_models(kind: str) -> None:
    assert schema.schema_path(kind).read_text(encoding="utf-8") == schema.schema_text(kind), STALE


@pytest.mark.parametrize("kind", sorted(schema.KINDS))
def test_schemas_are_valid_draft_7_and_use_only_its_keywords(kind: str) -> None:
    """Draft 7 is what yaml-language-server and JetBrains IDEs read."""
    data = json.loads(schema.shipped(kind))
    assert data["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(data)
    assert keywords(data) <= DRAFT_7 | {"$defs"}


DRAFT_7 = set(json.loads(json.dumps(jsonschema.Draft7Validator.META_SCHEMA))["properties"])


def keywords(node: Any) -> set[str]:
    """Every keyword a schema uses (not the names of properties or definitions)."""
    if isinstance(node, list):
        return set().union(*(keywords(item) for item in node))
    if not isinstance(node, dict):
        return set()
    found = set(node)
    for key, value in node.items():
        if key in ("properties", "$defs", "definitions"):
            found |= set().union(*(keywords(v) for v in value.values()))
        elif key not in ("enum", "const", "default", "required", "dependencies"):
            found |= keywords(value)
    return found


def test_cli_prints_the_shipped_schema() -> None:
    result = runner.invoke(app, ["schema", "profile"])
    assert result.exit_code == 0
    assert result.stdout == schema.schema_path("profile").read_text(encoding="utf-8")
    unknown = runner.invoke(app, ["schema", "profiles"])
    assert unknown.exit_code == 2
    assert "unknown schema 'profiles'; choose profile, manifest, ports" in unknown.stderr


def test_profile_schema_spells_from_as_written() -> None:
    rule = json.loads(schema.shipped("profile"))["$defs"]["InboundRule"]["properties"]
    assert "from" in rule and "from_" not in rule


def test_the_profiles_to_validate_include_every_builtin_and_fixture() -> None:
    assert len([p for p in PROFILES if p.startswith("profiles/")]) >= 12
    assert "tests/data/good/every-feature.yaml" in PROFILES
    assert "examples/site/profiles/web1.yaml" in PROFILES


@pytest.mark.parametrize("path", PROFILES)
def test_good_profiles_validate(path: str) -> None:
    load_profile(path)  # the loader takes it...
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    assert errors("profile", data) == []  # ...and so does the schema


def test_example_manifest_validates() -> None:
    data = yaml.safe_load(Path("examples/site/fwgen.yaml").read_text(encoding="utf-8"))
    assert data["hosts"]
    assert errors("manifest", data) == []


def test_port_database_and_a_site_port_file_validate() -> None:
    data = yaml.safe_load(Path("src/fwgen/data/services.yaml").read_text(encoding="utf-8"))
    assert len(data) > 300
    assert errors("ports", data) == []
    site = [
        {
            "name": "admin-ui",
            "title": "Admin UI",
            "ports": ["8443/tcp", {"proto": "udp", "start": 60000, "end": 61000}],
            "risk": "medium",
            "exposure": "lan-only",
            "category": "web",
        },
        {"name": "ssh", "title": "SSH", "ports": ["2222/tcp"], "risk": "medium"}
        | {"exposure": "public", "category": "remote-access", "override": True},
    ]
    assert errors("ports", site) == []


# What the loader refuses, and the schema with it: unknown keys, wrong types, values
# outside an enum, malformed ports and limits.
BAD_FILES = [
    "unknown-key.yaml",
    "wrong-type.yaml",
    "bad-option.yaml",
    "bad-limit.yaml",
    "port-name.yaml",
    "port-0.yaml",
    "port-65536.yaml",
    "port-without-name.yaml",
    "not-a-mapping.yaml",
]
BAD_PROFILES = {
    "address-enum": {"options": {"address": "manual"}},
    "forward-enum": {"options": {"forward": "route"}},
    "prefix-too-long": {"options": {"limit_prefix_v4": 33}},
    "prefix-not-int": {"options": {"limit_prefix_v6": "64"}},
    "unknown-top-key": {"desription": "x"},
    "unknown-option": {"options": {"pings": True}},
    "from-spelled-from_": {"inbound": [{"service": "ssh", "from_": "any"}]},
    "rule-as-string": {"inbound": ["ssh"]},
    "outbound-word": {"outbound": "deny"},
    "limit-unit": {"inbound": [{"service": "ssh", "limit": "10/day"}]},
    "burst-too-big": {
        "inbound": [{"service": "ssh", "limit": {"rate": "1/second", "burst": 10001}}]
    },
    "limit-key": {"inbound": [{"service": "ssh", "limit": {"rate": "1/second", "bust": 3}}]},
    "accept-unknown-code": {"inbound": [{"service": "ftp", "accept": {"FW999": "why"}}]},
    "accept-fw001": {"inbound": [{"service": "ftp", "accept": {"FW001": "why"}}]},
    "accept-no-reason": {"inbound": [{"service": "ftp", "accept": {"FW003": " "}}]},
    "icmp-type": {"inbound": [{"icmp": ["echo-requests"]}]},
    "network-name": {"networks": {"1lan": ["10.0.0.0/8"]}},
    "network-any": {"networks": {"any": ["10.0.0.0/8"]}},
    "network-file-key": {"networks": {"lan": [{"path": "x.txt"}]}},
    "rule-name": {"inbound": [{"port": "8443/tcp", "name": "admin ui"}]},
    "log-type": {"inbound": [{"service": "ssh", "log": [True]}]},
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_schema_refuses_bad_fixtures_the_loader_refuses(name: str) -> None:
    path = f"tests/data/bad/{name}"
    with pytest.raises(FwgenError):
        load_profile(path)
    assert errors("profile", yaml.safe_load(Path(path).read_text(encoding="utf-8")))


@pytest.mark.parametrize("name", sorted(BAD_PROFILES))
def test_schema_refuses_bad_profiles_the_loader_refuses(name: str, tmp_path: Path) -> None:
    data = BAD_PROFILES[name]
    path = tmp_path / "host.yaml"
    path.write_text(yaml.safe_dump({"description": "x", **data}))
    with pytest.raises(FwgenError):
        resolve_profile(str(path))  # the ICMP type names are checked when resolving
    assert errors("profile", {"description": "x", **data}), name


BAD_MANIFESTS = {
    "unknown-key": {"hosts": {"web1": {"profile": "webserver", "targets": {}, "sets": {}}}},
    "unknown-top-key": {"host": {}},
    "no-targets": {"hosts": {"web1": {"profile": "webserver"}}},
    "unknown-target": {"hosts": {"web1": {"profile": "webserver", "targets": {"pf": "x.conf"}}}},
    "set-type": {"hosts": {"web1": {"profile": "a", "targets": {}, "set": {"a": {"b": 1}}}}},
}


@pytest.mark.parametrize("name", sorted(BAD_MANIFESTS))
def test_schema_refuses_bad_manifests_the_loader_refuses(name: str, tmp_path: Path) -> None:
    path = tmp_path / "fwgen.yaml"
    path.write_text(yaml.safe_dump(BAD_MANIFESTS[name]))
    if name == "unknown-target":  # a target name is checked when the host is rendered
        result = runner.invoke(app, ["build", str(path), "--check"])
        assert result.exit_code == 2 and "pf" in result.stderr
    else:
        with pytest.raises(FwgenError):
            read_manifest(path)
    assert errors("manifest", BAD_MANIFESTS[name])


ENTRY = {"name": "x", "title": "X", "ports": ["1/tcp"], "risk": "low"} | {
    "exposure": "public",
    "category": "web",
}
BAD_PORT_FILES = {
    "risk-enum": [ENTRY | {"risk": "none"}],
    "exposure-enum": [ENTRY | {"exposure": "internet"}],
    "unknown-key": [ENTRY | {"port": "1/tcp"}],
    "port-text": [ENTRY | {"ports": ["1/dccp"]}],
    "port-mapping": [ENTRY | {"ports": [{"proto": "tcp", "start": 0, "end": 1}]}],
    "missing-title": [{k: v for k, v in ENTRY.items() if k != "title"}],
    "name-case": [ENTRY | {"name": "Admin UI"}],
    "not-a-list": ENTRY,
}


@pytest.mark.parametrize("name", sorted(BAD_PORT_FILES))
def test_schema_refuses_bad_port_files_the_loader_refuses(name: str, tmp_path: Path) -> None:
    path = tmp_path / "ports.yaml"
    path.write_text(yaml.safe_dump(BAD_PORT_FILES[name]))
    with pytest.raises(FwgenError):
        read_catalogue(path, "ports.yaml", site=True)
    assert errors("ports", BAD_PORT_FILES[name])


def test_every_option_has_a_description_and_a_row_in_the_docs() -> None:
    from fwgen.profile.options import Options

    options = json.loads(schema.shipped("profile"))["$defs"]["Options"]["properties"]
    assert sorted(options) == sorted(Options.model_fields)
    readme = (REPO / "docs/profiles.md").read_text(encoding="utf-8")
    for name, spec in options.items():
        description = spec.get("description", "")
        assert len(description.split()) >= 5, name  # a sentence, not a word
        assert f"\n| `{name}` | " in readme, f"docs/profiles.md: no row for option {name}"
