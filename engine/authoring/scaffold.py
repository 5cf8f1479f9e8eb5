"""The files of a new module (``engine init``): module.yaml, a README.md for its users and,
when asked, hooks.py. Without an API description the module is drafted from a built-in example
API (an ``/items`` listing, one item by id, PUT to write it back) signed in with the chosen
credential kind, so the template and a draft share one path and both validate."""

from __future__ import annotations

import os
import re
from pathlib import Path

from engine.authoring import listings
from engine.authoring.draft import LANGUAGE, Identity, form_fields, module_text
from engine.authoring.openapi import Api, Operation, Parameter, Scheme
from engine.language.schema import schema_path

EXAMPLE_ORIGIN = (
    "A new module written by `engine init`: it lists /items of an example JSON API.",
    "Replace the paths, fields and sign-in with the SaaS's; every key is described in",
    f"{LANGUAGE}. Loop: `engine validate DIR`, then `engine serve DIR`.",
)

HOOKS = '''"""Hooks of the {name} module: Python where YAML cannot say it (docs/hooks.md lists every
hook point and its signature)."""

from typing import Any


def tidy(record: Any, ctx: dict[str, Any]) -> Any:
    """Each record before it is stored (the backup steps' ``transform: tidy``); None drops it."""
    return record
'''


def example_api(auth: str) -> Api:
    """The built-in example: GET /items (paged), GET and PUT /items/{id}, one sign-in."""
    item = {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}}
    page = {"type": "object", "properties": {"items": {"type": "array", "items": item}}}
    query = (Parameter("page", "query"), Parameter("per_page", "query"))
    one = (Parameter("id", "path"),)
    operations = (
        Operation("get", "/items", "listItems", query, page, ()),
        Operation("get", "/items/{id}", "getItem", one, item, ()),
        Operation("put", "/items/{id}", "putItem", one, item, ()),
    )
    token_url = "https://auth.example.com/oauth/token"
    scheme = Scheme("token", auth, location="header", key="X-Api-Key", token_url=token_url)
    return Api(
        "3.1.0", "Example API", "", "https://api.example.com/v1", (scheme,), operations, None
    )


def module_id(folder: Path) -> str:
    """A module id from a folder name: lowercase letters, digits and hyphens."""
    slug = re.sub(r"[^a-z0-9]+", "-", folder.resolve().name.lower()).strip("-")[:64]
    return slug if slug[:1].isalpha() else f"m-{slug}".rstrip("-")


def schema_line(folder: Path) -> str:
    """The schema's path as the module's yaml-language-server line names it."""
    return Path(os.path.relpath(schema_path(), folder.resolve())).as_posix()


def files(api: Api, identity: Identity, origin: tuple[str, ...]) -> dict[str, str]:
    """The new module's files by name."""
    found = {
        "module.yaml": module_text(api, identity, origin),
        "README.md": readme(api, identity),
    }
    if identity.hooks:
        found["hooks.py"] = HOOKS.format(name=identity.name)
    return found


def readme(api: Api, identity: Identity) -> str:
    """The module's README for its users: what it backs up, its settings, what it is tested
    against (left to the author)."""
    tree = listings.build(api)
    types = [
        f"- {kind.name.replace('_', ' ')} (`{kind.name}`): listed by `{kind.listing.label}`"
        + (f", below {kind.parent.name}" if kind.parent else "")
        for kind in tree.kinds
    ]
    return "\n".join(
        [
            f"# {identity.name}",
            "",
            f"Backs up and restores {api.title or 'the SaaS'}'s resources through the module"
            " engine (`engine serve` this folder).",
            "",
            "## What it backs up",
            "",
            *types,
            "",
            "## Settings (the auth form)",
            "",
            "| field | type | label |",
            "|---|---|---|",
            *(f"| `{f['id']}` | {f['type']} | {f['label']} |" for f in form_fields(api)[0]),
            "",
            "## Tested against",
            "",
            "TODO: name the SaaS and the version this module is tested against.",
            "",
        ]
    )
