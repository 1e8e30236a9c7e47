"""The circuit breaker that skips Redis after repeated failures."""

from __future__ import annotations

import logging
import time

from permbase.metrics import BREAKER_OPEN

logger = logging.getLogger(__name__)


class CircuitBreaker:
    """Closed -> (threshold consecutive failures) -> open for `cooldown` seconds ->
    half-open: one call goes through; success closes, failure re-opens."""

    def __init__(self, threshold: int, cooldown: float) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.failures = 0
        self.opened_at: float | None = None
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        if self._probing or time.monotonic() - self.opened_at < self.cooldown:
            return False
        self._probing = True
        return True

    def success(self) -> None:
        if not self.failures and self.opened_at is None:
            return  # closed, and nothing to reset (every healthy call)
        if self.opened_at is not None:
            logger.warning("redis circuit breaker closed")
        self.failures = 0
        self.opened_at = None
        self._probing = False
        BREAKER_OPEN.set(0)

    def failure(self) -> None:
        self.failures += 1
        self._probing = False
        if self.failures >= self.threshold:
            if self.opened_at is None:
                logger.warning(
                    "redis circuit breaker opened after %d failures", self.failures
                )
            self.opened_at = time.monotonic()
            BREAKER_OPEN.set(1)


__all__ = ["CircuitBreaker"]
