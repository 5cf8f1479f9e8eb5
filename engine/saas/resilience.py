"""How a SaaS request survives a flaky SaaS: the connection's retry policy (which statuses and
errors, attempts, exponential backoff with full jitter, ``Retry-After`` in seconds or as a date)
run by tenacity on the injectable clock, and response rules (match a status or a body fragment:
retry, ignore, or fail with a message for the user).

Throttling is no failure: a "too many requests" answer whose ``Retry-After`` is within
``maxWait`` is waited out without using up an attempt, until the request's waits add up to
``throttleBudget``; only then do such answers count as attempts."""

from __future__ import annotations

import email.utils
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity

from engine.clock import Clock
from engine.errors import Ignored, Retryable, SaasError

T = TypeVar("T")

STATUSES = (429, 502, 503, 504)
ERRORS = ("connect", "timeout", "dropped")  # "invalid" (a JSON answer cut short) is opt-in
# Methods whose request may have reached the SaaS may be repeated only when repeating is harmless.
UNSAFE = frozenset({"POST", "PATCH"})


@dataclass(frozen=True)
class Policy:
    """The connection's ``retry`` mapping, with defaults."""

    attempts: int = 3
    statuses: frozenset[int] = frozenset(STATUSES)
    errors: frozenset[str] = frozenset(ERRORS)
    initial: float = 0.5
    maximum: float = 30.0
    multiplier: float = 2.0
    jitter: bool = True
    max_wait: float = 120.0  # the longest Retry-After honoured; a longer one fails at once
    throttle_budget: float = 600.0  # seconds of Retry-After one request may wait for free
    unsafe: bool = False  # repeat POST/PATCH after a timeout or a dropped connection

    @classmethod
    def of(cls, spec: Mapping[str, Any] | None) -> Policy:
        """The policy a connection's ``retry`` describes (None: the defaults)."""
        spec = spec or {}
        backoff = spec.get("backoff", {})
        return cls(
            attempts=int(spec.get("attempts", cls.attempts)),
            statuses=frozenset(spec.get("statuses", STATUSES)),
            errors=frozenset(spec.get("errors", ERRORS)),
            initial=float(backoff.get("initial", cls.initial)),
            maximum=float(backoff.get("max", cls.maximum)),
            multiplier=float(backoff.get("multiplier", cls.multiplier)),
            jitter=bool(backoff.get("jitter", cls.jitter)),
            max_wait=float(spec.get("maxWait", cls.max_wait)),
            throttle_budget=float(spec.get("throttleBudget", cls.throttle_budget)),
            unsafe=bool(spec.get("unsafe", cls.unsafe)),
        )

    def allows(self, failure: Retryable, method: str) -> bool:
        """Whether the policy repeats this failure of a request with this method."""
        if failure.kind == "rule":
            return True
        if failure.kind.isdigit():
            return int(failure.kind) in self.statuses
        if failure.kind not in self.errors:
            return False
        # a refused connection never reached the SaaS; anything else may have been processed
        return failure.kind == "connect" or method not in UNSAFE or self.unsafe

    def _backoff(self) -> tenacity.wait.wait_base:
        if self.jitter:
            return tenacity.wait_random_exponential(
                multiplier=self.initial, max=self.maximum, exp_base=self.multiplier
            )
        return tenacity.wait_exponential(
            multiplier=self.initial, max=self.maximum, exp_base=self.multiplier
        )

    async def run(self, method: str, attempt: Callable[[], Awaitable[T]], clock: Clock) -> T:
        """attempt() until it succeeds, fails for good, or the attempts run out (throttled
        tries, waited out within the budget, are not counted)."""
        backoff = self._backoff()

        def wait(state: tenacity.RetryCallState) -> float:
            failure = state.outcome.exception() if state.outcome else None
            if isinstance(failure, Retryable) and failure.retry_after is not None:
                return failure.retry_after
            return float(backoff(state))

        def repeats(failure: BaseException) -> bool:
            return isinstance(failure, Retryable) and self.allows(failure, method)

        retrying = tenacity.AsyncRetrying(
            stop=_Stop(self.attempts, self.throttle_budget),
            wait=wait,
            retry=tenacity.retry_if_exception(repeats),
            sleep=clock.sleep,
            reraise=True,
        )
        try:
            return await retrying(attempt)
        except Retryable as failure:
            if not self.allows(failure, method) or self.attempts == 1:
                raise SaasError(failure.message) from failure
            raise SaasError(f"{failure.message} (gave up after {self.attempts} attempts)") from (
                failure
            )


class _Stop:
    """Stops after ``attempts`` tries, not counting the tries the SaaS throttled while their
    waits fit the budget (tenacity asks once per failed try)."""

    FLOOR = 1.0  # what a Retry-After of 0 s costs, so that the free tries always end

    def __init__(self, attempts: int, budget: float) -> None:
        self.attempts = attempts
        self.left = budget
        self.free = 0

    def __call__(self, state: tenacity.RetryCallState) -> bool:
        failure = state.outcome.exception() if state.outcome else None
        if isinstance(failure, Retryable) and failure.throttled and failure.retry_after is not None:
            cost = max(failure.retry_after, self.FLOOR)
            if cost <= self.left:
                self.left -= cost
                self.free += 1
        return state.attempt_number - self.free >= self.attempts


def retry_after(value: str | None, clock: Clock, policy: Policy, label: str) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds (RFC 9110: seconds or a date);
    SaasError when it asks for longer than the policy's maxWait."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None  # unreadable: back off as usual
        seconds = max(0.0, moment.timestamp() - clock.now())
    if seconds > policy.max_wait:
        raise SaasError(
            f"{label}: the SaaS asked to retry after {seconds:.0f} s, longer than retry.maxWait"
            f" ({policy.max_wait:.0f} s)"
        )
    return seconds


@dataclass(frozen=True)
class Rule:
    """One response rule: statuses and/or a body fragment to match, and what to do."""

    statuses: frozenset[int]
    fragment: str | None
    action: str
    message: str | None

    def matches(self, status: int, body: bytes) -> bool:
        """Whether an answer with this status and body matches the rule."""
        if self.statuses and status not in self.statuses:
            return False
        return self.fragment is None or self.fragment.encode() in body


def rules_of(specs: Sequence[Mapping[str, Any]]) -> tuple[Rule, ...]:
    """The rules of a ``responses`` list, in order (the first match wins)."""
    return tuple(
        Rule(
            frozenset(spec.get("status", ())),
            spec.get("body"),
            str(spec["action"]),
            spec.get("message"),
        )
        for spec in specs
    )


def apply_rule(rule: Rule, label: str, status: int, wait: float | None) -> None:
    """Raises what a matched rule asks for."""
    said = f"{label}: the SaaS answered HTTP {status}"
    actions: dict[str, Callable[[], BaseException]] = {
        "retry": lambda: Retryable(f"{said} (a retry rule)", kind="rule", retry_after=wait),
        "ignore": lambda: Ignored(f"{said}, ignored by a response rule"),
        "fail": lambda: SaasError(f"{label}: {rule.message or said}"),
    }
    raise actions[rule.action]()
