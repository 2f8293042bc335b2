"""`fwgen query`'s answers as text and JSON, and where an expectations table disagrees."""

from __future__ import annotations

from typing import Any

from fwgen.review.packettable import Line
from fwgen.review.query import Decision, Result


def shown(result: Result, target: str | None) -> tuple[Decision, ...]:
    """The decisions to show: *target*'s (the Policy's where it decides alike), or the
    Policy's."""
    return result.targets.get(target or "", result.decisions)


def _decision_lines(decisions: tuple[Decision, ...], indent: str) -> list[str]:
    """One line for every family when they agree, else one line per family."""
    if len({(d.summary(), d.notes) for d in decisions}) == 1:
        first = decisions[0]
        return [f"{indent}{first.summary()}", *(f"{indent}  {n}" for n in first.notes)]
    out = []
    for d in decisions:
        out.append(f"{indent}{d.family}: {d.summary()}")
        out += [f"{indent}  {n}" for n in d.notes]
    return out


def as_text(results: list[Result], target: str | None) -> str:
    """Each packet, then what decides it; without a target, then each target that
    decides otherwise (targets deciding alike on one line)."""
    out = []
    for result in results:
        out.append(result.packet.text)
        out += _decision_lines(shown(result, target), "  ")
        if target is None:
            by_text: dict[tuple[str, ...], list[str]] = {}
            for name, decisions in result.targets.items():
                key = tuple(_decision_lines(decisions, "    "))
                by_text.setdefault(key, []).append(name)
            for lines_, names in by_text.items():
                out.append(f"  on {', '.join(names)}:")
                out += lines_
    return "".join(f"{line}\n" for line in out)


def as_json(results: list[Result], rows: list[Line], target: str | None) -> list[dict[str, Any]]:
    out = []
    for result, row in zip(results, rows, strict=True):
        entry: dict[str, Any] = {
            "packet": result.packet.text,
            "where": row.where,
            "decisions": [d.as_json() for d in shown(result, target)],
        }
        if target is None:
            entry["targets"] = {
                name: [d.as_json() for d in decisions] for name, decisions in result.targets.items()
            }
        else:
            entry["target"] = target
        if row.expected is not None:
            entry["expected"] = row.expected
            entry["agrees"] = agrees(result, row, target)
        out.append(entry)
    return out


def agrees(result: Result, row: Line, target: str | None) -> bool:
    """Whether every family gets the verdict *row* expects."""
    return all(d.verdict == row.expected for d in shown(result, target))


def disagreements(results: list[Result], rows: list[Line], target: str | None) -> list[str]:
    """One line for each row whose packet gets another verdict than the one it expects."""
    out = []
    for result, row in zip(results, rows, strict=True):
        if row.expected is None or agrees(result, row, target):
            continue
        got = "; ".join(
            f"{d.family}: {d.summary()}" if len(result.packet.families) > 1 else d.summary()
            for d in shown(result, target)
        )
        out.append(f"{row.where}: {result.packet.text}: expected {row.expected}, but {got}")
    return out
