"""The typed definition model: frozen dataclasses for every section of a module definition,
built once from the validated YAML by ``build``.

Each class names the JSON Schema node it models (``SCHEMA``, a JSON pointer); a field's YAML key
is its name in camelCase (a trailing underscore dropped: ``in_`` is ``in``). ``build`` fills
every key the YAML leaves out from that node's ``default`` (the schema states each default once);
a key with no default becomes None, an empty tuple or an empty mapping, by its type. Kinds
(credentials, pagination, backup steps) are unions dispatched on their tag (``TAG``), one class
per kind. Template values (strings, and trees of them such as a request's body) stay as loaded:
they are data the templating renders, not keys the engine reads.

May import: the language's schema (for the defaults) only."""

from engine.language.model.building import (
    Template,
    Tree,
    build,
    convert,
    schema_defaults,
    schema_properties,
    yaml_key,
)
from engine.language.model.connection import (
    ApiKey,
    Backoff,
    Basic,
    Bearer,
    Connection,
    Credentials,
    CredentialsHook,
    NoCredentials,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
    Retry,
    Session,
    Timeouts,
)
from engine.language.model.pagination import (
    CursorPaging,
    HeaderPaging,
    HookPaging,
    LinkPaging,
    NextUrlPaging,
    NoPaging,
    OffsetPaging,
    PagePaging,
    Pagination,
)
from engine.language.model.requests import (
    Request,
    ResponseRule,
)
from engine.language.model.resources import (
    BackupStep,
    CollectionStep,
    Conflict,
    DownloadStep,
    Each,
    Listing,
    Multipart,
    ObjectStep,
    ResourceMapping,
    ResourceType,
    RestoreStep,
    Upload,
)
from engine.language.model.sections import (
    Auth,
    BackupSection,
    Capabilities,
    Check,
    Choice,
    Column,
    Field,
    Form,
    HooksSection,
    Identity,
    RestoreSection,
    Scenario,
)

__all__ = [
    "ApiKey",
    "Auth",
    "Backoff",
    "BackupSection",
    "BackupStep",
    "Basic",
    "Bearer",
    "Capabilities",
    "Check",
    "Choice",
    "CollectionStep",
    "Column",
    "Conflict",
    "Connection",
    "Credentials",
    "CredentialsHook",
    "CursorPaging",
    "DownloadStep",
    "Each",
    "Field",
    "Form",
    "HeaderPaging",
    "HookPaging",
    "HooksSection",
    "Identity",
    "LinkPaging",
    "Listing",
    "Multipart",
    "NextUrlPaging",
    "NoCredentials",
    "NoPaging",
    "OAuth2ClientCredentials",
    "OAuth2RefreshToken",
    "ObjectStep",
    "OffsetPaging",
    "PagePaging",
    "Pagination",
    "Request",
    "ResourceMapping",
    "ResourceType",
    "ResponseRule",
    "RestoreSection",
    "RestoreStep",
    "Retry",
    "Scenario",
    "Session",
    "Template",
    "Timeouts",
    "Tree",
    "Upload",
    "build",
    "convert",
    "schema_defaults",
    "schema_properties",
    "yaml_key",
]
