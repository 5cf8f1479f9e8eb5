"""Hooks of the broken-definition corpus (tests/broken/47-*.yaml)."""

from typing import Any


def parse_projects(answer: Any, ctx: dict[str, Any]) -> list[Any]:
    return list(answer.json()["projects"])
