"""The definition's other sections: identity, capabilities, forms, the auth check, backup and
restore sections (scenarios) and the hooks section."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from engine.language.model.building import Template, Tree
from engine.language.model.requests import Request


@dataclass(frozen=True)
class Identity:
    """The module's id, name, version, description and vendor."""

    SCHEMA: ClassVar[str] = "#/$defs/identity"
    id: str
    name: str
    version: str
    description: str | None
    vendor: str | None

    def to_json(self) -> dict[str, str]:
        """The identity as the wire and the manifest carry it (absent keys left out)."""
        pairs = {"id": self.id, "name": self.name, "version": self.version}
        extra = {"description": self.description, "vendor": self.vendor}
        return pairs | {key: value for key, value in extra.items() if value is not None}


@dataclass(frozen=True)
class Capabilities:
    """The auth kinds, features and storage kinds the module declares."""

    SCHEMA: ClassVar[str] = "#/$defs/capabilities"
    auth: tuple[str, ...]
    features: tuple[str, ...]
    storage: tuple[str, ...]


@dataclass(frozen=True)
class Choice:
    """One item of a dropdown."""

    SCHEMA: ClassVar[str] = "#/$defs/field/properties/items/items"
    label: str
    value: str | int | float | bool


@dataclass(frozen=True)
class Field:
    """One field of a form."""

    SCHEMA: ClassVar[str] = "#/$defs/field"
    KEEP: ClassVar[str] = "layout"
    id: str
    type: str
    label: str
    placeholder: str | None
    tooltip: str | None
    required: bool | None
    min_length: int | None
    max_length: int | None
    pattern: str | None
    format: str | None
    minimum: float | None
    maximum: float | None
    items: tuple[Choice, ...]
    default: str | int | float | bool | None
    layout: Tree = field(default_factory=dict, compare=False)  # as written


@dataclass(frozen=True)
class Column:
    """A column of form fields."""

    SCHEMA: ClassVar[str] = "#/$defs/form/properties/columns/items"
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class Form:
    """A hycu-layout form: its columns of fields and the payload template they fill."""

    SCHEMA: ClassVar[str] = "#/$defs/form"
    KEEP: ClassVar[str] = "layout"
    columns: tuple[Column, ...]
    payload: Tree
    layout: Tree = field(default_factory=dict, compare=False)  # as written, for the platform

    @property
    def fields(self) -> tuple[Field, ...]:
        """Every field, column by column."""
        return tuple(field for column in self.columns for field in column.fields)


@dataclass(frozen=True)
class Check:
    """The connection check run by /api/schemas/auth/validate."""

    SCHEMA: ClassVar[str] = "#/$defs/check"
    request: Request
    expect: str | None
    message: str | None
    field: str | None


@dataclass(frozen=True)
class Auth:
    """The auth form and its connection check."""

    SCHEMA: ClassVar[str] = "#/$defs/auth"
    form: Form | None
    check: Check | None


@dataclass(frozen=True)
class BackupSection:
    """The backup options form."""

    SCHEMA: ClassVar[str] = "#/$defs/backup"
    options: Form | None


@dataclass(frozen=True)
class Scenario:
    """A restore scenario as the module declares it."""

    SCHEMA: ClassVar[str] = "#/$defs/scenario"
    id: str
    kind: str
    name: str
    description: str
    types: tuple[str, ...] | None
    options: Form | None
    target: Tree


@dataclass(frozen=True)
class RestoreSection:
    """The scenarios, the shared options form and the conflict policy of restores."""

    SCHEMA: ClassVar[str] = "#/$defs/restore"
    scenarios: tuple[Scenario, ...]
    options: Form | None
    conflict: Template


@dataclass(frozen=True)
class HooksSection:
    """The hooks file and the task hooks."""

    SCHEMA: ClassVar[str] = "#/properties/hooks"
    file: str
    before_task: str | None
    after_task: str | None
