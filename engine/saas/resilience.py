"""How a SaaS request survives a flaky SaaS: the connection's retry policy (which statuses and
errors, attempts, exponential backoff with full jitter, ``Retry-After`` in seconds or as a date)
run by tenacity on the injectable clock, and response rules (match a status or a body fragment:
retry, ignore, or fail with a message for the user).

Throttling is no failure: a "too many requests" answer whose ``Retry-After`` is within
``maxWait`` is waited out without using up an attempt, until the request's waits add up to
``throttleBudget``; only then do such answers count as attempts."""

from __future__ import annotations

import email.utils
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from engine.clock import Clock
from engine.errors import Ignored, Retryable, SaasError
from engine.language.model import ResponseRule, Retry

T = TypeVar("T")

# Methods whose request may have reached the SaaS may be repeated only when repeating is harmless.
UNSAFE = frozenset({"POST", "PATCH"})


@dataclass(frozen=True)
class Policy:
    """The connection's retry policy (``connection.retry``, defaults filled by the loader),
    run by tenacity."""

    retry: Retry

    def allows(self, failure: Retryable, method: str) -> bool:
        """Whether the policy repeats this failure of a request with this method."""
        if failure.kind == "rule":
            return True
        if failure.kind.isdigit():
            return int(failure.kind) in self.retry.statuses
        if failure.kind not in self.retry.errors:
            return False
        # a refused connection never reached the SaaS; anything else may have been processed
        return failure.kind == "connect" or method not in UNSAFE or self.retry.unsafe

    def _backoff(self) -> tenacity.wait.wait_base:
        backoff = self.retry.backoff
        waits = tenacity.wait_random_exponential if backoff.jitter else tenacity.wait_exponential
        return waits(multiplier=backoff.initial, max=backoff.max, exp_base=backoff.multiplier)

    async def run(self, method: str, attempt: Callable[[], Awaitable[T]], clock: Clock) -> T:
        """attempt() until it succeeds, fails for good, or the attempts run out (throttled
        tries, waited out within the budget, are not counted). The first try runs on its own:
        most succeed, and building the retrying machinery for each request cost as much as the
        rest of the wrapper; a first failure is replayed to tenacity as its first try."""
        try:
            return await attempt()
        except Retryable as failure:
            first = failure
        return await self._retried(method, _replaying(first, attempt), clock)

    async def _retried(self, method: str, attempt: Callable[[], Awaitable[T]], clock: Clock) -> T:
        backoff = self._backoff()

        def wait(state: tenacity.RetryCallState) -> float:
            failure = state.outcome.exception() if state.outcome else None
            if isinstance(failure, Retryable) and failure.retry_after is not None:
                return failure.retry_after
            return float(backoff(state))

        def repeats(failure: BaseException) -> bool:
            return isinstance(failure, Retryable) and self.allows(failure, method)

        retrying = tenacity.AsyncRetrying(
            stop=_Stop(self.retry.attempts, self.retry.throttle_budget),
            wait=wait,
            retry=tenacity.retry_if_exception(repeats),
            sleep=clock.sleep,
            reraise=True,
        )
        try:
            return await retrying(attempt)
        except Retryable as failure:
            attempts = self.retry.attempts
            if not self.allows(failure, method) or attempts == 1:
                raise SaasError(failure.message) from failure
            raise SaasError(f"{failure.message} (gave up after {attempts} attempts)") from failure


def _replaying(first: Retryable, attempt: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    """attempt, whose first call raises the failure the first try already met (so tenacity
    counts, waits and judges that try as it judges the others) instead of trying again."""
    replayed = False

    async def again() -> T:
        nonlocal replayed
        if not replayed:
            replayed = True
            raise first
        return await attempt()

    return again


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
    longest = policy.retry.max_wait
    if seconds > longest:
        raise SaasError(
            f"{label}: the SaaS asked to retry after {seconds:.0f} s, longer than retry.maxWait"
            f" ({longest:.0f} s)"
        )
    return seconds


def matches(rule: ResponseRule, status: int, body: bytes) -> bool:
    """Whether an answer with this status and body matches the response rule."""
    if rule.status and status not in rule.status:
        return False
    return rule.body is None or rule.body.encode() in body


def apply_rule(rule: ResponseRule, label: str, status: int, wait: float | None) -> None:
    """Raises what a matched rule asks for."""
    said = f"{label}: the SaaS answered HTTP {status}"
    actions: dict[str, Callable[[], BaseException]] = {
        "retry": lambda: Retryable(f"{said} (a retry rule)", kind="rule", retry_after=wait),
        "ignore": lambda: Ignored(f"{said}, ignored by a response rule"),
        "fail": lambda: SaasError(f"{label}: {rule.message or said}"),
    }
    raise actions[rule.action]()
