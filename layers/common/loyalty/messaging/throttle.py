"""A token bucket: this container's share of the SES send rate.

SES allows ``SesMaxSendRate`` messages a second for the account. The sender's event source mapping
runs at most ``SenderMaxConcurrency`` containers at once, and each keeps a bucket of
``rate / concurrency`` tokens a second (burst: one second's worth), so together they stay within
the rate. A ``ThrottlingException`` anyway (another sender on the account) puts the message back on
the queue with a delay (``loyalty.messaging.sending``): never dropped, never sent twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    rate: float  # tokens a second
    capacity: float  # the largest burst
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _tokens: float = field(default=-1.0, init=False)
    _at: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.capacity < 1:
            raise ValueError("a token bucket needs a positive rate and room for one token")
        self._tokens, self._at = self.capacity, self.monotonic()

    def _refill(self) -> None:
        now = self.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def wait(self) -> float:
        """How long until a token is free (0 if one is)."""
        self._refill()
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    def take(self, max_wait: float) -> bool:
        """Take a token, sleeping for it up to ``max_wait`` seconds; False (nothing taken) if it
        would take longer."""
        delay = self.wait()
        if delay > max_wait:
            return False
        if delay > 0:
            self.sleep(delay)
            self._refill()
        self._tokens -= 1
        return True
