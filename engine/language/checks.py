"""Checks of a schema-valid module definition beyond its shape: templates (syntax and the names
each place provides), references between parts, selectors, forms and capability consistency."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from engine.language import forms, hooks
from engine.language.document import Document, Problem, escape
from engine.language.model import Form, HooksSection, build, schema_defaults
from engine.language.schema import TemplatePlace, suggest, template_places
from engine.language.selectors import syntax_error
from engine.language.templating import FILTERS, TESTS, SyntaxProblem, Usage, inspect, is_template
from engine.language.tree import TypeTree, parents_of

SCENARIO_KEYS = ("id", "kind")  # what restore templates find in ``scenario``
_JINJA_GLOBALS = frozenset(
    {"range", "dict", "lipsum", "cycler", "joiner", "namespace", "true", "false", "none"}
)


class Checker:
    """Runs every semantic check over one definition; collects problems as values."""

    def __init__(self, document: Document, *, shape_ok: bool = True) -> None:
        self.doc = document
        self.shape_ok = shape_ok
        self.data: Mapping[str, Any] = document.data
        types = self.data.get("resources")
        self.types: Mapping[str, Any] = types if isinstance(types, Mapping) else {}
        self.tree = TypeTree(self.types)
        self.problems: list[Problem] = []

    def run(self) -> list[Problem]:
        for check in (
            self._templates,
            self._references,
            self._selectors,
            self._forms,
            self._capabilities,
            self._paths,
            self._risks,
            self._flags,
            self._hooks,
        ):
            try:
                check()
            except (KeyError, TypeError, AttributeError, IndexError):
                if self.shape_ok:
                    raise
                # the schema already reported the malformed part this check tripped over
        return self.problems

    def error(self, pointer: str, message: str, *, at_key: bool = False) -> None:
        self.problems.append(self.doc.problem(pointer, message, at_key=at_key))

    def warn(self, pointer: str, message: str, *, at_key: bool = False) -> None:
        self.problems.append(self.doc.warning(pointer, message, at_key=at_key))

    # templates -----------------------------------------------------------------------------
    def _templates(self) -> None:
        for place in template_places(self.data):
            if not is_template(place.source):
                continue
            usage = inspect(place.source)
            if isinstance(usage, SyntaxProblem):
                self.error(
                    place.pointer, f"template syntax error (line {usage.line}): {usage.message}"
                )
                continue
            self._names(place, usage)
            self._calls(place, usage)
            for risk in usage.risks:
                self.warn(place.pointer, risk)

    def _names(self, place: TemplatePlace, usage: Usage) -> None:
        for name in sorted(usage.names - _JINJA_GLOBALS - set(place.names)):
            offered = ", ".join(place.names) or "no names"
            hint = suggest(name, place.names)
            self.error(
                place.pointer, f"unknown name '{name}' (this place provides: {offered}){hint}"
            )
        for name, key in usage.attributes:
            known = self._keys_of(name, place.pointer)
            if name in place.names and known is not None and key not in known:
                listed = ", ".join(known) or "nothing"
                self.error(
                    place.pointer,
                    f"{name} has no key '{key}' (it has: {listed}){suggest(key, known)}",
                )

    def _calls(self, place: TemplatePlace, usage: Usage) -> None:
        for kind, used, known in (("filter", usage.filters, FILTERS), ("test", usage.tests, TESTS)):
            for name in sorted(used - known):
                self.error(place.pointer, f"unknown {kind} '{name}'{suggest(name, sorted(known))}")

    def _keys_of(self, name: str, pointer: str) -> list[str] | None:
        """The keys ``name`` has at ``pointer``; None when unknown (not checked)."""
        if name == "settings":
            form = self.data.get("auth", {}).get("form")
            return list(form.get("payload", {})) if form else []
        if name == "scenario":
            return list(SCENARIO_KEYS)
        if name in ("ctx", "target") and pointer.startswith("/resources/"):
            kind = pointer.split("/")[2]  # type names need no unescaping
            # an unknown or unreachable parent is reported once, at its reference
            if kind not in self.types or not self.tree.reachable(kind):
                return None
            if pointer.split("/")[3] in ("backup", "restore"):
                return self.tree.ctx_keys(kind)
            keys: list[str] = []  # the parent's ctx: whichever parent listed it
            for parent in self.tree.parents[kind]:
                keys += [key for key in self.tree.ctx_keys(parent) if key not in keys]
            return keys
        return None

    # hooks ---------------------------------------------------------------------------------
    def _hooks(self) -> None:
        """The hooks file exists and imports, and every bound function is in it."""
        bound = list(hooks.bindings(self.data))
        section = self.data.get("hooks", {})
        if not bound and "file" not in section:
            return
        module_id = str(self.data.get("module", {}).get("id", "module"))
        place = "/hooks/file" if "file" in section else bound[0].pointer
        file = section.get("file", schema_defaults(HooksSection)["file"])
        try:
            found = hooks.load(module_id, Path(self.doc.file).parent, file, True)
        except FileNotFoundError as exc:
            self.error(place, str(exc))
            return
        except Exception as exc:  # whatever importing the module's code raised
            self.error(place, f"cannot import the hooks file: {_import_failure(exc)}")
            return
        for binding in bound:
            if found.function(binding.function) is None:
                hint = suggest(binding.function, found.names())
                self.error(
                    binding.pointer,
                    f"no function '{binding.function}' in {found.file.name if found.file else ''}"
                    f" (hook point {binding.point}){hint}",
                )

    # references ----------------------------------------------------------------------------
    def _references(self) -> None:
        for name, spec in self.types.items():
            self._parents(name, spec)
        if self.types and not self.tree.roots():
            self.error(
                "/resources",
                "no root resource type: at least one type needs no parent",
                at_key=True,
            )
        self._scenario_types()
        self._check_field()
        for name, spec in self.types.items():
            self._steps(name, spec)

    def _parents(self, name: str, spec: Mapping[str, Any]) -> None:
        """Each parent exists, and one of them is reachable from a root (a cycle is fine: a
        type may nest in itself)."""
        pointer = f"/resources/{escape(name)}/parent"
        many = isinstance(spec.get("parent"), list)
        parents = parents_of(spec)
        unknown = [(i, parent) for i, parent in enumerate(parents) if parent not in self.types]
        for i, parent in unknown:
            where = f"{pointer}/{i}" if many else pointer
            self.error(where, f"unknown resource type '{parent}'{suggest(parent, self.types)}")
        if parents and not unknown and self.tree.roots() and not self.tree.reachable(name):
            self.error(
                pointer,
                f"type '{name}' is never listed: none of its parents is reachable from a root type",
            )

    def _steps(self, name: str, spec: Mapping[str, Any]) -> None:
        """Backup step ids are unique in their type; restore steps read existing ones."""
        base = f"/resources/{escape(name)}"
        ids: list[str] = []
        for i, step in enumerate(spec.get("backup", [])):
            if step["id"] in ids:
                self.error(f"{base}/backup/{i}/id", f"duplicate backup step id '{step['id']}'")
            ids.append(step["id"])
        for i, step in enumerate(spec.get("restore", [])):
            sources = step["from"] if isinstance(step["from"], list) else [step["from"]]
            for j, source in enumerate(sources):
                if source not in ids:
                    known = ", ".join(ids) or "none"
                    where = f"{base}/restore/{i}/from" + (
                        f"/{j}" if isinstance(step["from"], list) else ""
                    )
                    self.error(
                        where,
                        f"unknown backup step '{source}' of type '{name}' (it has: {known})"
                        + suggest(source, ids),
                    )

    def _check_field(self) -> None:
        named = self.data.get("auth", {}).get("check", {}).get("field")
        form = self.data.get("auth", {}).get("form")
        ids = [field.id for field in build(Form, form).fields] if form else []
        if named is not None and named not in ids:
            self.error("/auth/check/field", f"unknown form field '{named}'{suggest(named, ids)}")

    def _scenario_types(self) -> None:
        seen: set[str] = set()
        for i, scenario in enumerate(self.data.get("restore", {}).get("scenarios", [])):
            if scenario["id"] in seen:
                self.error(
                    f"/restore/scenarios/{i}/id", f"duplicate scenario id '{scenario['id']}'"
                )
            seen.add(scenario["id"])
            for j, kind in enumerate(scenario.get("types", [])):
                if kind not in self.types:
                    hint = suggest(kind, self.types)
                    self.error(
                        f"/restore/scenarios/{i}/types/{j}", f"unknown resource type '{kind}'{hint}"
                    )

    # selectors -----------------------------------------------------------------------------
    def _selectors(self) -> None:
        for pointer, expression in self._selector_places():
            reason = syntax_error(expression)
            if reason is not None:
                self.error(pointer, f"invalid JMESPath selector: {reason}")

    def _selector_places(self) -> Iterator[tuple[str, str]]:
        check = self.data.get("auth", {}).get("check", {})
        if "expect" in check:
            yield "/auth/check/expect", check["expect"]
        for name, spec in self.types.items():
            base = f"/resources/{escape(name)}/list"
            listing = spec.get("list", {})
            if "records" in listing:
                yield f"{base}/records", listing["records"]
            for key in ("cursor", "url"):
                if key in listing.get("pagination", {}):
                    yield f"{base}/pagination/{key}", listing["pagination"][key]
            for i, step in enumerate(spec.get("backup", [])):
                at = f"/resources/{escape(name)}/backup/{i}"
                for key, value in (
                    ("select", step.get("select")),
                    ("each/select", step.get("each", {}).get("select")),
                    ("list/records", step.get("list", {}).get("records")),
                ):
                    if value is not None:
                        yield f"{at}/{key}", value

    # forms ---------------------------------------------------------------------------------
    def _forms(self) -> None:
        for pointer, form in self._form_places():
            for relative, message in forms.form_problems(build(Form, form)):
                self.error(pointer + relative, message)

    def _form_places(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        places = [("/auth/form", self.data.get("auth", {}).get("form"))]
        places.append(("/backup/options", self.data.get("backup", {}).get("options")))
        restore = self.data.get("restore", {})
        places.append(("/restore/options", restore.get("options")))
        places += [
            (f"/restore/scenarios/{i}/options", s.get("options"))
            for i, s in enumerate(restore.get("scenarios", []))
        ]
        yield from ((pointer, form) for pointer, form in places if form is not None)

    # capabilities --------------------------------------------------------------------------
    def _capabilities(self) -> None:
        caps = self.data.get("capabilities", {})
        for check in _CAPABILITY_RULES:
            for pointer, message, is_error in check(self.data, caps):
                (self.error if is_error else self.warn)(pointer, message)

    # request paths -------------------------------------------------------------------------
    def _paths(self) -> None:
        for pointer, path in self._request_paths():
            if not path.startswith(("/", "{{", "{%")):
                self.error(
                    pointer,
                    "expected a path starting with '/' (it is joined to connection.baseUrl)",
                )

    # legal but risky --------------------------------------------------------------------------
    def _risks(self) -> None:
        for rule in _RISK_RULES:
            for pointer, message in rule(self.data):
                self.warn(pointer, message)

    def _flags(self) -> None:
        for name, spec in self.types.items():
            for key, value in spec["resource"].items():
                if key in _FLAGS:
                    self._flag(name, key, value)

    def _flag(self, name: str, key: str, value: Any) -> None:
        """A boolean mapping field is a boolean, "true"/"false", or a template; hasSubresources
        that can be true on a type without child types is a warning."""
        pointer = f"/resources/{escape(name)}/resource/{key}"
        literal = not isinstance(value, bool) and not is_template(value)
        if literal and str(value).strip().lower() not in ("true", "false"):
            self.error(pointer, f"{key} must be true, false or a template, not {value!r}")
        text = value.strip().lower() if isinstance(value, str) else None
        maybe_true = value is True or text == "true" or (text is not None and not literal)
        if key == "hasSubresources" and maybe_true and not self.tree.children(name):
            self.warn(pointer, f"hasSubresources can be true but type '{name}' has no child type")

    def _request_paths(self) -> Iterator[tuple[str, str]]:
        check = self.data.get("auth", {}).get("check", {})
        if "request" in check:
            yield "/auth/check/request/path", check["request"]["path"]
        for name, spec in self.types.items():
            base = f"/resources/{escape(name)}"
            yield f"{base}/list/request/path", spec["list"]["request"]["path"]
            for i, step in enumerate(spec.get("backup", [])):
                for key in ("request", "each/request", "list/request"):
                    request = _dig(step, key)
                    if request is not None:
                        yield f"{base}/backup/{i}/{key}/path", request["path"]
            for i, step in enumerate(spec.get("restore", [])):
                yield f"{base}/restore/{i}/request/path", step["request"]["path"]


def _dig(data: Mapping[str, Any], path: str) -> Any:
    """The value at a slash-separated key path, or None."""
    found: Any = data
    for key in path.split("/"):
        found = found.get(key) if isinstance(found, Mapping) else None
    return found


Rule = Callable[[Mapping[str, Any], Mapping[str, Any]], Iterator[tuple[str, str, bool]]]


def _auth_settings(
    data: Mapping[str, Any], caps: Mapping[str, Any]
) -> Iterator[tuple[str, str, bool]]:
    declared = "AUTH_SETTINGS" in caps.get("auth", [])
    auth = data.get("auth", {})
    if declared and "form" not in auth:
        yield "/capabilities/auth", "AUTH_SETTINGS needs an auth form (auth.form)", True
    if "form" in auth and not declared:
        yield "/auth/form", "an auth form needs AUTH_SETTINGS in capabilities.auth", True
    if declared and "form" in auth and "check" not in auth:
        yield (
            "/auth",
            "no auth.check: /api/schemas/auth/validate can only check the form's rules",
            False,
        )


def _cross_source(
    data: Mapping[str, Any], caps: Mapping[str, Any]
) -> Iterator[tuple[str, str, bool]]:
    declared = "CROSS_SOURCE_RESTORE" in caps.get("features", [])
    scenarios = data.get("restore", {}).get("scenarios", [])
    other = [i for i, s in enumerate(scenarios) if s.get("kind") == "otherSource"]
    if declared and not other:
        yield (
            "/capabilities/features",
            "CROSS_SOURCE_RESTORE needs a restore scenario of kind otherSource",
            True,
        )
    for i in other if not declared else []:
        yield (
            f"/restore/scenarios/{i}/kind",
            "an otherSource scenario needs CROSS_SOURCE_RESTORE in capabilities.features",
            True,
        )


def _export(data: Mapping[str, Any], caps: Mapping[str, Any]) -> Iterator[tuple[str, str, bool]]:
    if "EXPORT" in caps.get("features", []) and "export" not in data:
        yield "/capabilities/features", "EXPORT needs an export section", True


_CAPABILITY_RULES: tuple[Rule, ...] = (_auth_settings, _cross_source, _export)


_FLAGS = ("hasSubresources", "canBackup")


def _hidden_children(data: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    tree = TypeTree(data.get("resources", {}))
    for name, spec in tree.types.items():
        children = tree.children(name)
        if spec["resource"].get("hasSubresources") is False and children:
            yield (
                f"/resources/{escape(name)}/resource/hasSubresources",
                "hasSubresources is false, so these child types are never listed: "
                + ", ".join(children),
            )


def _plain_http(data: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    connection = data.get("connection", {})
    auth = connection.get("auth", {})
    kinds = [each.get("kind", "none") for each in (auth if isinstance(auth, list) else [auth])]
    kind = next((kind for kind in kinds if kind != "none"), None)
    if kind is not None and str(connection["baseUrl"]).lower().startswith("http://"):
        yield "/connection/baseUrl", f"{kind} credentials would travel unencrypted; use https"


def _at_least_once(data: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for name, spec in data.get("resources", {}).items():
        for i, step in enumerate(spec.get("restore", [])):
            if step.get("idempotent"):
                continue  # the author says a repeated write creates nothing twice
            if str(step["request"].get("method", "GET")).upper() == "POST":
                yield (
                    f"/resources/{escape(name)}/restore/{i}/request/method",
                    "a POST write is at-least-once: a resumed restore may create some objects "
                    "twice (prefer PUT by id, or a create with If-None-Match; a POST that "
                    "carries its own id may say idempotent: true)",
                )


_RISK_RULES: tuple[Callable[[Mapping[str, Any]], Iterator[tuple[str, str]]], ...] = (
    _hidden_children,
    _plain_http,
    _at_least_once,
)


def check(document: Document, *, shape_ok: bool = True) -> list[Problem]:
    """Every semantic problem (and warning) of a definition; with ``shape_ok`` false (the schema
    found problems), checks that trip over a malformed part are skipped."""
    return Checker(document, shape_ok=shape_ok).run()


def _import_failure(exc: Exception) -> str:
    """An import failure in one line: the exception, and the line for a syntax error."""
    if isinstance(exc, SyntaxError):
        return f"SyntaxError at line {exc.lineno}: {exc.msg}"
    return f"{type(exc).__name__}: {exc}"
