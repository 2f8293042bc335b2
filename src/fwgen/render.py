"""Policy → text: pick the target, let its module prepare the data, fill its templates."""

from __future__ import annotations

import functools
from typing import Any

import jinja2

from fwgen import __version__
from fwgen.errors import FwgenError, RenderError, did_you_mean, raise_collected
from fwgen.paths import templates_dir
from fwgen.policy import Policy
from fwgen.targets import TARGETS, RenderOptions, Target


def target(name: str) -> Target:
    if name not in TARGETS:
        raise FwgenError(
            f"unknown target '{name}'{did_you_mean(name, TARGETS)}; targets are {', '.join(TARGETS)}"
        )
    return TARGETS[name]


@functools.cache
def environment() -> jinja2.Environment:
    """One Jinja environment per process: strict, whitespace-controlled."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def header(policy: Policy) -> dict[str, Any]:
    """What every file's header says: no timestamps, no host names."""
    return {
        "version": __version__,
        "profile": policy.profile,
        "description": policy.description,
        "files": policy.files,
        "digest": policy.digest(),
    }


def refuse_unacknowledged_risks(policy: Policy) -> None:
    """A rule that opens a known backdoor port renders only with an `allow_risky:` reason."""
    errors: list[FwgenError] = []
    for rule in policy.rules:
        if rule.risky and not rule.acknowledged:
            path, _, line = rule.origin.rpartition(":")
            errors.append(
                RenderError(
                    f"{rule.name} opens {rule.risky}, a known backdoor port; remove the rule, "
                    'or acknowledge it with `allow_risky: "why"`',
                    path=path or None,
                    line=int(line) if line.isdigit() else None,
                )
            )
    raise_collected(errors)


def render_with_warnings(
    policy: Policy, target_name: str, options: RenderOptions | None = None
) -> tuple[dict[str, str], list[str]]:
    """Render *policy* for a target: ``({file name: text}, [warnings])``.

    With ``options.strict`` any approximation is an error instead of a warning.
    """
    options = options or RenderOptions()
    spec = target(target_name)
    refuse_unacknowledged_risks(policy)
    built = spec.module().build(policy, options)
    if options.strict and built.warnings:
        raise RenderError(f"{target_name}: {built.warnings[0]} (--strict)")
    env = environment()
    head = header(policy)
    files = {}
    for name, output in built.files.items():
        template = env.get_template(f"{spec.name}/{output.template}")
        files[name] = template.render(header=head, **output.context)
    return files, built.warnings


def render(
    policy: Policy, target_name: str, options: RenderOptions | None = None
) -> dict[str, str]:
    """Render *policy* for a target: ``{file name: text}``."""
    return render_with_warnings(policy, target_name, options)[0]
