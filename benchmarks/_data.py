"""Realistic log text for the benchmarks: JSON application logs, plain text, nginx access
lines and Java stack traces, 100-600 bytes, generated fast and deterministically."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

_WORD_TEXT = (
    "request user order payment cart checkout session token cache miss hit upstream "
    "downstream retry timeout connection pool worker queue job batch shard replica leader "
    "follower commit offset partition consumer producer latency p99 slow fast ok failed "
    "accepted rejected invalid missing expired refreshed created updated deleted scheduled "
    "pod node container image pull restart probe readiness liveness config secret volume "
    "mount tenant account invoice shipment inventory warehouse sku price discount coupon "
    "email sms push notification webhook callback signature verified unauthorized forbidden "
    "not-found conflict throttled backoff circuit breaker open closed half-open fallback "
    "GET POST PUT DELETE /api/v1/orders /api/v1/users /healthz /metrics /api/v2/cart"
)
_WORDS = tuple(_WORD_TEXT.split())
_LOGGERS = ("checkout.api", "orders.worker", "payments.gateway", "auth.session",
            "inventory.sync", "notify.dispatch", "cart.service", "search.indexer")
_LEVELS = ("info",) * 14 + ("debug",) * 3 + ("warn",) * 2 + ("error",)
_CLASSES = ("com.example.orders.OrderService", "com.example.payments.StripeClient",
            "org.springframework.web.servlet.FrameworkServlet",
            "io.netty.channel.AbstractChannelHandlerContext",
            "com.zaxxer.hikari.pool.HikariPool", "java.util.concurrent.ThreadPoolExecutor")
_EXCEPTIONS = ("java.lang.IllegalStateException", "java.net.SocketTimeoutException",
               "org.postgresql.util.PSQLException", "java.lang.NullPointerException")


_FILLER = " ".join(random.Random(1).choices(_WORDS, k=20_000))


class FastRandom(random.Random):
    """Float-based ``randrange``/``randint``/``choice``: several times faster than the
    stdlib's exact ones, and uniform enough for test data."""

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        if stop is None:
            start, stop = 0, start
        return start + int(self.random() * (stop - start))

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))

    def choice(self, seq: Sequence[Any]) -> Any:  # type: ignore[override]
        return seq[int(self.random() * len(seq))]


def words(rng: random.Random, n: int) -> str:
    """About ``n`` words: a slice of a long random text."""
    start = int(rng.random() * (len(_FILLER) - 8 * n))
    return _FILLER[start:start + 7 * n].strip()


def fit(text: str, target: int, rng: random.Random) -> str:
    """``text`` padded with words (a slice of a long random text) or cut to ``target`` chars."""
    need = target - len(text)
    if need <= 0:
        return text[:target]
    start = rng.randrange(len(_FILLER) - need - 1)
    return text + " " + _FILLER[start:start + need - 1]


def json_line(rng: random.Random, ts: str, target: int) -> str:
    head = (f'{{"time":"{ts}","level":"{rng.choice(_LEVELS)}",'
            f'"logger":"{rng.choice(_LOGGERS)}","user":"u-{rng.randrange(100000)}",'
            f'"request_id":"{rng.getrandbits(64):016x}","latency_ms":{rng.randrange(1, 3000)},'
            f'"status":{rng.choice((200, 200, 200, 201, 204, 400, 404, 500, 503))},"msg":"')
    room = max(10, target - len(head) - 2)
    return head + fit(words(rng, 6), room, rng) + '"}'


def plain_line(rng: random.Random, ts: str, target: int) -> str:
    if rng.random() < 0.5:
        text = (f"{ts[:10]} {ts[11:23]} {rng.choice(('INFO', 'INFO', 'WARN', 'DEBUG'))} "
                f"[worker-{rng.randrange(16)}] {rng.choice(_CLASSES)} - "
                f"processed order {rng.randrange(10**6)} for customer {rng.randrange(10**5)} "
                f"in {rng.randrange(1, 900)} ms: {words(rng, 5)}")
    else:
        text = (f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)} - - "
                f"[15/Jan/2025:{ts[11:19]} +0000] \"{rng.choice(('GET', 'GET', 'POST'))} "
                f"/api/v1/{rng.choice(_WORDS)}/{rng.randrange(10**6)}?page={rng.randrange(50)} "
                f"HTTP/1.1\" {rng.choice((200, 200, 304, 404, 502))} {rng.randrange(100, 90000)} "
                f"\"-\" \"Mozilla/5.0 (X11; Linux x86_64) {words(rng, 3)}\"")
    return fit(text, target, rng)


def stack_lines(rng: random.Random) -> list[str]:
    out = [f"{rng.choice(_EXCEPTIONS)}: {words(rng, 12)}"]
    for _ in range(rng.randint(3, 9)):
        cls = rng.choice(_CLASSES)
        out.append(f"\tat {cls}.{rng.choice(_WORDS).replace('/', '')}"
                   f"({cls.rsplit('.', 1)[1]}.java:{rng.randrange(20, 900)}) "
                   f"~[app.jar:1.{rng.randrange(40)}.{rng.randrange(10)}]")
    return [fit(line, rng.randint(100, 180), rng) for line in out]
