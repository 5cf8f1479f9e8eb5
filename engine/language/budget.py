"""What one template render may spend: time, the size of what it builds, range lengths and
the operands of powers, repeats and paddings. The sandbox's hooks (engine/language/templating.py)
call these checks; a render past a limit fails with LimitExceeded instead of holding the event
loop."""

from __future__ import annotations

import re
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, overload

from engine.errors import LimitExceeded

MAX_SIZE = 8 * 2**20  # characters of a string, or items of a list, one operation may build
MAX_BUILT = 32 * 2**20  # what all the operations of one render may build together
MAX_RANGE = 100_000  # items of one range()
MAX_INT_BITS = 4096  # bits of an integer a power or a product may build (1,233 digits)
SECONDS = 0.25  # time one render may take
_CHECK_EVERY = 64  # ticks between two reads of the clock


@dataclass
class _Spent:
    """What the running render has spent so far."""

    deadline: float
    ticks: int = 0
    built: int = 0


_SPENT: ContextVar[_Spent | None] = ContextVar("template_budget", default=None)


def begin() -> Token[_Spent | None]:
    """Starts the limits of one render (end it with ``end``). The clock is the monotonic wall
    clock: what matters is how long the event loop waits, and reading it costs no system call."""
    return _SPENT.set(_Spent(time.perf_counter() + SECONDS))


def end(token: Token[_Spent | None]) -> None:
    """Ends the limits of a render ``begin`` started."""
    _SPENT.reset(token)


def tick() -> None:
    """One step of a render (a call, a lookup, an operator, a loop turn); checks the time."""
    spent = _SPENT.get()
    if spent is None:
        return
    spent.ticks += 1
    if spent.ticks % _CHECK_EVERY == 0 and time.perf_counter() > spent.deadline:
        raise LimitExceeded(f"the render took over {SECONDS} s")


def built(value: Any) -> Any:
    """A value an operation built, counted against the render's limits (and handed back)."""
    if isinstance(value, _SIZED):
        size = len(value)
        if size > MAX_SIZE:
            raise LimitExceeded(f"a value of {size:,} characters or items (at most {MAX_SIZE:,})")
        spent = _SPENT.get()
        if spent is not None:
            spent.built += size
            if spent.built > MAX_BUILT:
                raise LimitExceeded(f"the render built over {MAX_BUILT:,} characters or items")
    elif isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise LimitExceeded(f"an integer of over {MAX_INT_BITS} bits")
    return value


_SIZED = (str, bytes, list, tuple, dict, set)


def planned(size: int, what: str) -> None:
    """Refuses an operation before it runs when what it would build is too big."""
    if size > MAX_SIZE:
        raise LimitExceeded(
            f"{what} would build {size:,} characters or items (at most {MAX_SIZE:,})"
        )


# operators ---------------------------------------------------------------------------------
def _sized(value: Any) -> bool:
    return isinstance(value, str | bytes | list | tuple)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _power(left: Any, right: Any) -> None:
    if _whole(left) and _whole(right) and right * (abs(left).bit_length() - 1) > MAX_INT_BITS:
        raise LimitExceeded(f"a power of over {MAX_INT_BITS} bits ({left} ** {right})")


def _times(left: Any, right: Any) -> None:
    if _whole(left) and _whole(right):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
            raise LimitExceeded(f"a product of over {MAX_INT_BITS} bits")
    elif _sized(left) and _whole(right):
        planned(len(left) * right, "a repeat ('*')")
    elif _whole(left) and _sized(right):
        planned(left * len(right), "a repeat ('*')")


def _plus(left: Any, right: Any) -> None:
    if _sized(left) and _sized(right):
        planned(len(left) + len(right), "a concatenation ('+')")


def _modulo(left: Any, right: Any) -> None:
    if isinstance(left, str):
        values = list(right.values()) if isinstance(right, Mapping) else right
        planned(len(left) + percent_widths(left, values), "a format ('%')")


OPERATORS: dict[str, Callable[[Any, Any], None]] = {
    "**": _power,
    "*": _times,
    "+": _plus,
    "%": _modulo,
}


def concat(parts: Iterable[Any]) -> str:
    """The ``~`` operator: every part as text, joined, within the limits."""
    texts = [str(part) for part in parts]
    planned(sum(map(len, texts)), "a concatenation ('~')")
    return str(built("".join(texts)))


# paddings and formats ----------------------------------------------------------------------
_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _ints(values: Any) -> list[int]:
    found = values if isinstance(values, list | tuple) else [values]
    return [value for value in found if _whole(value)]


def percent_widths(template: str, values: Any) -> int:
    """The widths and precisions a %-format asks for, together (a ``*`` takes the values')."""
    total = 0
    for match in _PERCENT.finditer(template):
        for number in match.groups():
            if number == "*":
                total += sum(abs(value) for value in _ints(values))
            elif number:
                total += int(number)
    return total


def brace_widths(template: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    """The widths and precisions a str.format template asks for, together."""
    total = 0
    for _, _, spec, _ in string.Formatter().parse(template):
        total += sum(int(number) for number in re.findall(r"\d+", spec or ""))
        if spec and "{" in spec:  # a nested width comes from the arguments
            total += sum(abs(value) for value in _ints([*args, *kwargs.values()]))
    return total


def _arg(args: Sequence[Any], kwargs: Mapping[str, Any], index: int, name: str) -> Any:
    return kwargs[name] if name in kwargs else args[index] if len(args) > index else None


def _int(value: Any, default: int) -> int:
    return abs(value) if _whole(value) else default


def _padded(text: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    return len(text) + _int(_arg(args, kwargs, 0, "width"), 0)


def _indented(text: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    width = _arg(args, kwargs, 0, "width")
    each = len(width) if isinstance(width, str) else _int(width, 4)
    return len(text) + (text.count("\n") + 1) * each


def _tabs(text: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    return len(text) + text.count("\t") * _int(_arg(args, kwargs, 0, "tabsize"), 8)


def _replaced(text: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    old, new = str(_arg(args, kwargs, 0, "old")), str(_arg(args, kwargs, 1, "new"))
    found = len(text) + 1 if old == "" else text.count(old)
    return len(text) + found * max(0, len(new) - len(old))


def _formatted(text: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    return len(text) + percent_widths(text, [*args, *kwargs.values()])


def _braced(text: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    values = args[0].values() if args and isinstance(args[0], Mapping) else []
    return len(text) + brace_widths(text, [*args, *values], kwargs)


Estimate = Callable[[str, Sequence[Any], Mapping[str, Any]], int]
# what a call on a string can build from small arguments, by method or filter name
STRING_CALLS: dict[str, Estimate] = {
    "center": _padded,
    "ljust": _padded,
    "rjust": _padded,
    "zfill": _padded,
    "indent": _indented,
    "expandtabs": _tabs,
    "replace": _replaced,
    "format": _braced,
    "format_map": _braced,
}
STRING_FILTERS: dict[str, Estimate] = STRING_CALLS | {"format": _formatted}


def joined(value: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """Refuses a join whose separators alone would be too big."""
    separator = _arg(args, kwargs, 0, "d")
    if isinstance(value, Sequence) and isinstance(separator, str):
        planned(len(value) * len(separator), "a join")


# ranges ------------------------------------------------------------------------------------
class BoundedRange(Sequence[int]):
    """``range()`` in templates: at most MAX_RANGE items, and each turn of a loop over it
    counts against the time budget."""

    def __init__(self, *args: int) -> None:
        self._numbers = range(*args)
        if len(self._numbers) > MAX_RANGE:
            raise LimitExceeded(f"a range of {len(self._numbers):,} items (at most {MAX_RANGE:,})")

    def __len__(self) -> int:
        return len(self._numbers)

    @overload
    def __getitem__(self, index: int) -> int: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[int]: ...

    def __getitem__(self, index: int | slice) -> int | Sequence[int]:
        return self._numbers[index]

    def __iter__(self) -> Iterator[int]:
        return ticking(self._numbers)

    def __repr__(self) -> str:
        return repr(self._numbers)


def ticking(items: Iterable[Any]) -> Iterator[Any]:
    """The items, each one a tick of the render (loops go through this)."""
    for item in items:
        tick()
        yield item
