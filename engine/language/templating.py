"""Sandboxed Jinja2 templates: rendering with native types, and static checks of the names a
template uses. The only module that imports jinja2."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, Undefined, meta, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.errors import FilterFailed, LimitExceeded, TemplateError
from engine.language import budget
from engine.language.filters import FILTERS as OWN_FILTERS

_MARKERS = ("{{", "{%", "{#")
_SINGLE = re.compile(r"\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}", re.DOTALL)


class _BoundedCode(CodeGenerator):
    """Compiles every loop to count its turns and ``~`` to check what it builds: the two steps
    of a template that no sandbox hook sees."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        counted = nodes.Call(nodes.EnvironmentAttribute("ticking"), [node.iter], [], None, None)
        node.iter = counted.set_lineno(node.iter.lineno)
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat((")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write("))")


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox with the render limits of engine.budget checked in its hooks."""

    code_generator_class = _BoundedCode
    intercepted_binops = frozenset(budget.OPERATORS)
    ticking = staticmethod(budget.ticking)
    concat = staticmethod(budget.concat)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget.tick()
        budget.OPERATORS[operator](left, right)
        return budget.built(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget.tick()
        method = getattr(__obj, "__wrapped__", __obj)  # str.format comes wrapped by the sandbox
        owner = getattr(method, "__self__", None)
        estimate = budget.STRING_CALLS.get(getattr(method, "__name__", ""))
        if isinstance(owner, str) and estimate is not None:
            budget.planned(estimate(owner, args, kwargs), f"str.{method.__name__}()")
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(owner, Mapping) and method.__name__ == "get":
            return result  # a value of the data, not one the template built
        return budget.built(result)


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that ticks, checks what it would build (a padding, say) and counts what it
    built."""
    estimate = budget.STRING_FILTERS.get(name)
    if name in _PICKING:
        return function
    if estimate is None and name != "join":

        @wraps(function)
        def counted(*args: Any, **kwargs: Any) -> Any:
            budget.tick()
            return budget.built(function(*args, **kwargs))

        return counted
    passes = 1 if hasattr(function, "jinja_pass_arg") else 0  # a context comes first

    @wraps(function)
    def checked(*args: Any, **kwargs: Any) -> Any:
        budget.tick()
        value, rest = args[passes], args[passes + 1 :]
        if estimate is not None and isinstance(value, str):
            budget.planned(estimate(value, rest, kwargs), f"the filter {name}")
        elif estimate is None:
            budget.joined(value, rest, kwargs)
        return budget.built(function(*args, **kwargs))

    return checked


# filters that hand back a part of their input (data that exists already), never build one
_PICKING = frozenset({"attr", "d", "default", "first", "last", "max", "min", "random"})


def _environment() -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False)
    env.filters.update(OWN_FILTERS)
    env.filters = {name: _bounded_filter(name, each) for name, each in env.filters.items()}
    env.globals["range"] = budget.BoundedRange
    return env


_ENV = _environment()
FILTERS = frozenset(_ENV.filters)
TESTS = frozenset(_ENV.tests)


def is_template(value: str) -> bool:
    """Whether a string holds template syntax (anything else is a literal)."""
    return any(marker in value for marker in _MARKERS)


_BUILT = (nodes.List, nodes.Dict, nodes.Tuple, nodes.Call, nodes.Filter)


@dataclass(frozen=True)
class _Compiled:
    """A template compiled once for every render of its source. Rendering builds the template's
    context directly from its globals flattened here once: jinja2's own ``new_context`` merges
    the environment's globals (a ChainMap) anew on every render, which was most of the cost of
    a render (engine CPU per small resource, docs/benchmarks.md)."""

    template: Template
    globals: dict[str, Any]
    depth: int  # how deep a native result's own containers go (see _compile)
    native: bool  # one ``{{ expression }}``: its value, not its text

    def __call__(self, names: Mapping[str, Any]) -> Any:
        template = self.template
        context = template.environment.context_class(
            template.environment,
            {**self.globals, **names},
            template.name,
            template.blocks,
            globals=self.globals,
        )
        if not self.native:
            return _text(template.root_render_func(context))
        for _ in template.root_render_func(context):
            pass
        return context.vars["result"]


@lru_cache(maxsize=4096)
def _compile(source: str) -> _Compiled | None:
    """The compiled template of a source (None for a literal, which renders as itself), and
    how deep its result's own containers go: a native result can hold an undefined value only
    where the expression built it (a lookup hands over plain data), so only that far is
    searched for one."""
    if not is_template(source):
        return None
    single = _SINGLE.fullmatch(source)
    if single is None:  # text: an undefined value fails as it prints
        return _compiled(_ENV.from_string(source), 0, native=False)
    expression = single.group("expr")
    depth = _built_depth(_ENV.parse(f"{{{{ {expression} }}}}"))
    # the template jinja2 builds for an expression: it assigns the value to ``result``
    compiled = _ENV.compile_expression(expression, undefined_to_none=False)
    return _compiled(compiled._template, depth, native=True)


def _compiled(template: Template, depth: int, *, native: bool) -> _Compiled:
    return _Compiled(template, dict(template.globals), depth, native)


def _text(pieces: Iterator[str]) -> str:
    """A text template's output, refused once it grows past the size limit."""
    kept, size = [], 0
    for piece in pieces:
        size += len(piece)
        if size > budget.MAX_SIZE:
            budget.planned(size, "the output")
        kept.append(piece)
    return "".join(kept)


def _built_depth(node: nodes.Node) -> int:
    """How many container-building nodes (literals, calls, filters) nest in an expression."""
    below = max((_built_depth(child) for child in node.iter_child_nodes()), default=0)
    return below + 1 if isinstance(node, _BUILT) else below


def render(source: str, names: Mapping[str, Any], *, place: str) -> Any:
    """Renders one template string; exactly one ``{{ expression }}`` keeps its native type."""
    try:
        compiled = _compile(source)
        if compiled is None:
            return source
        spending = budget.begin()
        try:
            result = compiled(names)
        finally:
            budget.end(spending)
        _fail_on_undefined(result, compiled.depth)
    except LimitExceeded as exc:
        raise TemplateError(f"over a limit{_line(exc)}: {exc}", place=place) from exc
    except UndefinedError as exc:
        raise TemplateError(f"undefined: {exc.message}", place=place) from exc
    except FilterFailed as exc:
        raise TemplateError(f"failed{_line(exc)}: {exc}", place=place) from exc
    except SecurityError as exc:
        raise TemplateError("not allowed in the sandbox", place=place) from exc
    except TemplateSyntaxError as exc:
        raise TemplateError(f"syntax error: {exc.message}", place=place) from exc
    except Exception as exc:  # a template is user code: any failure is its error, not ours
        raise TemplateError(f"failed: {type(exc).__name__}", place=place) from exc
    return result


def _line(exc: BaseException) -> str:
    """Where in its template an error was raised (" at line N"), when the traceback says."""
    line = None
    trace = exc.__traceback__
    while trace is not None:
        template = trace.tb_frame.f_globals.get("__jinja_template__")
        if isinstance(template, Template):
            line = template.get_corresponding_lineno(trace.tb_lineno)
        trace = trace.tb_next
    return "" if line is None else f" at line {line}"


def _fail_on_undefined(value: Any, depth: int) -> None:
    """Raises the error that an undefined value in a native result stands for, searching
    ``depth`` levels of containers."""
    if isinstance(value, Undefined):
        str(value)
    elif depth <= 0:
        return
    elif isinstance(value, Mapping):
        for item in value.values():
            _fail_on_undefined(item, depth - 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _fail_on_undefined(item, depth - 1)


def render_tree(value: Any, names: Mapping[str, Any], *, place: str) -> Any:
    """Renders every string leaf of a mapping/list tree (keys stay literal)."""
    if isinstance(value, str):
        return render(value, names, place=place)
    if isinstance(value, Mapping):
        return {
            key: render_tree(item, names, place=f"{place}/{key}") for key, item in value.items()
        }
    if isinstance(value, list):
        return [render_tree(item, names, place=f"{place}/{i}") for i, item in enumerate(value)]
    return value


@dataclass(frozen=True)
class Usage:
    """What a template uses: its free names, the ``name.attr`` lookups on them, the filters
    and tests it calls (compare with FILTERS and TESTS), and its risky constructs."""

    names: frozenset[str]
    attributes: tuple[tuple[str, str], ...]
    filters: frozenset[str]
    tests: frozenset[str]
    risks: tuple[str, ...] = ()  # legal but costly: what a render may run into a limit with


@dataclass(frozen=True)
class SyntaxProblem:
    """A template syntax error: its message and the 1-based line inside the template."""

    message: str
    line: int


def inspect(source: str) -> Usage | SyntaxProblem:
    """Parses a template and lists what it uses, or says why it does not parse."""
    try:
        tree = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        return SyntaxProblem(exc.message or "syntax error", exc.lineno)
    filters = frozenset(node.name for node in tree.find_all(nodes.Filter))
    tests = frozenset(node.name for node in tree.find_all(nodes.Test))
    risks = _risks(tree)  # first: collecting the names folds some literals into constants
    names = _free_names(tree, filters - FILTERS, tests - TESTS)
    return Usage(names, _lookups(tree), filters, tests, risks)


def _risks(tree: nodes.Template) -> tuple[str, ...]:
    """Warnings for a template that loops over a range or repeats a string or list."""
    risks = []
    if any(_is_range(call.node) for call in tree.find_all(nodes.Call)):
        risks.append(
            f"the template loops over range(): a render stops past {budget.MAX_RANGE:,} items"
            f" of a range or {budget.SECONDS} s"
        )
    if any(
        _is_sequence(node.left) or _is_sequence(node.right) for node in tree.find_all(nodes.Mul)
    ):
        risks.append(
            f"the template repeats a string or list with '*': a render stops past"
            f" {budget.MAX_SIZE:,} characters or items"
        )
    return tuple(risks)


def _is_range(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "range"


def _is_sequence(node: nodes.Node) -> bool:
    """A literal string, list or tuple, or text joined with ``~``."""
    literal = isinstance(node, nodes.Const) and isinstance(node.value, str | list | tuple)
    return literal or isinstance(node, nodes.List | nodes.Tuple | nodes.Concat)


def _free_names(
    tree: nodes.Template, filters: frozenset[str], tests: frozenset[str]
) -> frozenset[str]:
    """The names a template reads from its context; unknown ``filters`` and ``tests`` are stubbed,
    as jinja2 stops its walk at them."""
    if filters or tests:
        env = _ENV.overlay()
        env.filters = {**_ENV.filters, **dict.fromkeys(filters, _stub)}
        env.tests = {**_ENV.tests, **dict.fromkeys(tests, _stub)}
        tree.set_environment(env)
    return frozenset(meta.find_undeclared_variables(tree))


def _stub(*_: Any) -> bool:
    """Stands in for an unknown filter or test while a template's names are collected."""
    return False


def _lookups(tree: nodes.Template) -> tuple[tuple[str, str], ...]:
    """The ``name.attr`` and ``name["key"]`` lookups made directly on a context name."""
    lookups = [
        (node.node.name, node.attr)
        for node in tree.find_all(nodes.Getattr)
        if isinstance(node.node, nodes.Name)
    ]
    lookups += [
        (node.node.name, node.arg.value)
        for node in tree.find_all(nodes.Getitem)
        if isinstance(node.node, nodes.Name)
        and isinstance(node.arg, nodes.Const)
        and isinstance(node.arg.value, str)
    ]
    return tuple(lookups)
