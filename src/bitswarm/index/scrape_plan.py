"""Which swarms to scrape at which tracker, and when: the index's scrape scheduler, sans-IO.

Entries come in with their info-hashes (``scrape_hashes``: v1, and for a v2 torrent the
SHA-256 cut to 20 bytes as BEP 52 swarms use it) and their announce URLs. Each http(s)
tracker whose URL follows BEP 48's convention is scraped at its scrape URL, each udp://
tracker by BEP 15; other schemes and URLs are ignored. ``next_requests(now)`` hands out
batches, one per tracker at a time and at most ``max_in_flight`` at once: many swarms per
request (as many as keep an HTTP URL under ``max_http_url_bytes``, at most 74 per UDP
packet), swarms never answered first, then the longest unanswered; a swarm is due again
``rescrape_interval_s`` after its last attempt. The runner reports each request back with
``answered`` (which returns ``ScrapeResult`` values to store) or ``failed``; a tracker that
fails waits ``backoff_initial_s``, doubled after each further failure up to
``backoff_max_s``, and an answer resets it. Trackers and (tracker, swarm) pairs held are
capped; what comes beyond a cap is refused (``track`` says how many) and counted.

Time comes in as ``now`` (seconds); nothing here reads a clock or touches a socket.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bitswarm.errors import UsageError
from bitswarm.tracker.scrape import MAX_UDP_SCRAPE_HASHES, http_scrape_url, scrape_url_for
from bitswarm.tracker.swarm import INFO_HASH_BYTES, SwarmCounts

# A swarm's counts are refreshed this often: counts change slowly, and trackers ask
# clients for 30-minute announce intervals too.
RESCRAPE_INTERVAL_S = 30 * 60.0
# A tracker that failed waits a minute, then 2, 4, ... up to 6 hours.
BACKOFF_INITIAL_S = 60.0
BACKOFF_MAX_S = 6 * 3600.0
# Requests in flight at once (each to a different tracker).
MAX_IN_FLIGHT = 4
# Trackers held: a site lists many torrents but they name few trackers; beyond this,
# new trackers are refused (a flood of uploads naming junk trackers costs no memory).
MAX_TRACKERS = 1000
# (tracker, swarm) pairs held, about 200 bytes each.
MAX_TRACKED_PAIRS = 200_000
# Many trackers and proxies refuse request lines beyond 2-8 KB; 2 KB passes them all.
# A fully percent-encoded info_hash parameter is 71 bytes, so 27 to ~40 swarms fit.
MAX_HTTP_URL_BYTES = 2048
# opentracker answers at most 64 swarms per HTTP scrape (OT_MAXMULTISCRAPE_COUNT).
MAX_HTTP_HASHES = 64
# The longest announce URL taken (a URL that alone fills a request is no tracker's).
MAX_ANNOUNCE_URL_CHARS = 1024


class ScrapeProtocol(enum.Enum):
    HTTP = "http"
    UDP = "udp"


@dataclass(frozen=True, slots=True)
class ScrapeTarget:
    """A tracker to scrape: its scrape URL (HTTP) or ``udp://host:port`` (UDP)."""

    protocol: ScrapeProtocol
    url: str

    @property
    def udp_address(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        assert self.protocol is ScrapeProtocol.UDP, "only a UDP target has an address"
        assert parts.hostname is not None, "scrape_target made it with a host"
        assert parts.port is not None, "scrape_target made it with a port"
        return parts.hostname, parts.port


@dataclass(frozen=True, slots=True)
class ScrapeRequest:
    """A batch to send: ``url`` is the whole GET URL for HTTP, the target's for UDP."""

    request_id: int
    target: ScrapeTarget
    info_hashes: tuple[bytes, ...]
    url: str


@dataclass(frozen=True, slots=True)
class ScrapeResult:
    """One tracker's counts of one swarm, as of ``checked_at`` (Unix seconds)."""

    tracker: str
    info_hash: bytes
    counts: SwarmCounts
    checked_at: float


@dataclass(frozen=True, slots=True)
class ScrapeFailed:
    """A request failed; its tracker is asked again no sooner than ``retry_at``."""

    target: ScrapeTarget
    reason: str
    failures: int
    retry_at: float


def scrape_target(announce: str) -> ScrapeTarget | None:
    """Where to scrape the tracker of ``announce``, or None when it cannot be scraped."""
    if len(announce) > MAX_ANNOUNCE_URL_CHARS:
        return None
    try:
        parts = urlsplit(announce)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme == "udp":
        if not parts.hostname or not port:
            return None
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return ScrapeTarget(ScrapeProtocol.UDP, f"udp://{host.lower()}:{port}")
    url = scrape_url_for(announce)
    return ScrapeTarget(ScrapeProtocol.HTTP, url) if url is not None else None


def scrape_hashes(info_hash_v1: str | None, info_hash_v2: str | None) -> tuple[bytes, ...]:
    """The 20-byte info-hashes an entry's swarms scrape under (hybrids: both)."""
    hashes = []
    if info_hash_v1:
        hashes.append(bytes.fromhex(info_hash_v1))
    if info_hash_v2:
        hashes.append(bytes.fromhex(info_hash_v2)[:INFO_HASH_BYTES])
    return tuple(hashes)


@dataclass(slots=True)
class _TrackerState:
    target: ScrapeTarget
    # info-hash -> time of the last request that included it (None: never asked).
    last_asked: dict[bytes, float | None] = field(default_factory=dict)
    failures: int = 0
    not_before: float = 0.0
    in_flight: int | None = None  # the request id


@dataclass(frozen=True, slots=True)
class PlanStats:
    trackers: int
    pairs: int
    in_flight: int
    refused_trackers: int
    refused_pairs: int


class ScrapePlan:
    """The scrape schedule of many swarms at many trackers (see the module docstring)."""

    def __init__(
        self,
        *,
        rescrape_interval_s: float = RESCRAPE_INTERVAL_S,
        backoff_initial_s: float = BACKOFF_INITIAL_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        max_in_flight: int = MAX_IN_FLIGHT,
        max_trackers: int = MAX_TRACKERS,
        max_pairs: int = MAX_TRACKED_PAIRS,
        max_http_url_bytes: int = MAX_HTTP_URL_BYTES,
        max_http_hashes: int = MAX_HTTP_HASHES,
        max_udp_hashes: int = MAX_UDP_SCRAPE_HASHES,
    ) -> None:
        if min(rescrape_interval_s, backoff_initial_s, max_in_flight, max_trackers, max_pairs) <= 0:
            raise UsageError("scrape plan limits must be positive")
        if not 0 < max_udp_hashes <= MAX_UDP_SCRAPE_HASHES or max_http_hashes <= 0:
            raise UsageError(f"a scrape asks for 1 to {MAX_UDP_SCRAPE_HASHES} swarms")
        self.rescrape_interval_s = rescrape_interval_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = max(backoff_max_s, backoff_initial_s)
        self.max_in_flight = max_in_flight
        self.max_trackers = max_trackers
        self.max_pairs = max_pairs
        self.max_http_url_bytes = max_http_url_bytes
        self.max_http_hashes = max_http_hashes
        self.max_udp_hashes = max_udp_hashes
        self._trackers: dict[ScrapeTarget, _TrackerState] = {}
        self._pairs = 0
        # request id -> (tracker, swarms asked, when each was asked before this request)
        self._requests: dict[int, tuple[_TrackerState, tuple[bytes, ...], dict[bytes, float | None]]] = {}
        self._ids = itertools.count(1)
        self._refused_trackers = 0
        self._refused_pairs = 0

    # -- what to scrape ------------------------------------------------------------------

    def track(self, info_hashes: Iterable[bytes], announce_urls: Iterable[str]) -> int:
        """Scrape ``info_hashes`` at each scrapable tracker of ``announce_urls`` from now
        on (pairs held already are kept as they are). Returns how many new (tracker,
        swarm) pairs were refused for the caps. Raises ``UsageError`` for an info-hash
        that is not 20 bytes."""
        hashes = list(dict.fromkeys(info_hashes))
        if any(len(info_hash) != INFO_HASH_BYTES for info_hash in hashes):
            raise UsageError("an info-hash to scrape is 20 bytes")
        refused = 0
        targets = {target for url in announce_urls if (target := scrape_target(url)) is not None}
        for target in sorted(targets, key=lambda item: item.url):
            state = self._trackers.get(target)
            if state is None:
                if len(self._trackers) >= self.max_trackers:
                    self._refused_trackers += 1
                    refused += len(hashes)
                    continue
                state = self._trackers[target] = _TrackerState(target)
            for info_hash in hashes:
                if info_hash in state.last_asked:
                    continue
                if self._pairs >= self.max_pairs:
                    refused += 1
                    continue
                state.last_asked[info_hash] = None
                self._pairs += 1
        self._refused_pairs += refused
        return refused

    def untrack(self, info_hashes: Iterable[bytes]) -> None:
        """Stop scraping ``info_hashes`` anywhere (an entry was deleted); trackers left
        with nothing to scrape are dropped unless a request to them is in flight."""
        gone = set(info_hashes)
        for target, state in list(self._trackers.items()):
            for info_hash in gone & state.last_asked.keys():
                del state.last_asked[info_hash]
                self._pairs -= 1
            if not state.last_asked and state.in_flight is None:
                del self._trackers[target]

    # -- the schedule --------------------------------------------------------------------

    def _due(self, state: _TrackerState, now: float) -> list[bytes]:
        """The tracker's swarms due now: never asked first, then the longest waiting."""
        due = [
            (asked if asked is not None else float("-inf"), info_hash)
            for info_hash, asked in state.last_asked.items()
            if asked is None or now - asked >= self.rescrape_interval_s
        ]
        due.sort()
        return [info_hash for _asked, info_hash in due]

    def _batch(self, target: ScrapeTarget, due: list[bytes]) -> tuple[tuple[bytes, ...], str]:
        if target.protocol is ScrapeProtocol.UDP:
            return tuple(due[: self.max_udp_hashes]), target.url
        batch = [due[0]]  # one swarm always goes, whatever the URL's length
        url = http_scrape_url(target.url, batch)
        for info_hash in due[1 : self.max_http_hashes]:
            longer = http_scrape_url(target.url, [*batch, info_hash])
            if len(longer) > self.max_http_url_bytes:
                break
            batch.append(info_hash)
            url = longer
        return tuple(batch), url

    def next_requests(self, now: float) -> list[ScrapeRequest]:
        """Requests to send now: one per tracker that has swarms due, is not backing off
        and has no request in flight, up to ``max_in_flight`` in flight in all; the
        trackers with the oldest due swarm go first."""
        free = self.max_in_flight - len(self._requests)
        if free <= 0:
            return []
        candidates: list[tuple[float, str, _TrackerState, list[bytes]]] = []
        for state in self._trackers.values():
            if state.in_flight is not None or state.not_before > now:
                continue
            due = self._due(state, now)
            if due:
                oldest = state.last_asked[due[0]]
                candidates.append((oldest if oldest is not None else float("-inf"), state.target.url, state, due))
        candidates.sort(key=lambda item: (item[0], item[1]))
        requests = []
        for _oldest, _url, state, due in candidates[:free]:
            hashes, url = self._batch(state.target, due)
            request_id = next(self._ids)
            state.in_flight = request_id
            before = {info_hash: state.last_asked[info_hash] for info_hash in hashes}
            for info_hash in hashes:
                state.last_asked[info_hash] = now
            self._requests[request_id] = (state, hashes, before)
            requests.append(ScrapeRequest(request_id, state.target, hashes, url))
        return requests

    def _finish(self, request_id: int) -> tuple[_TrackerState, tuple[bytes, ...], dict[bytes, float | None]]:
        found = self._requests.pop(request_id, None)
        if found is None:
            raise UsageError(f"no scrape request {request_id} is in flight")
        state = found[0]
        state.in_flight = None
        if not state.last_asked and state.target in self._trackers:
            del self._trackers[state.target]
        return found

    def answered(self, request_id: int, counts: Mapping[bytes, SwarmCounts], now: float) -> list[ScrapeResult]:
        """The tracker answered ``request_id``: its counts of the swarms it was asked for
        (others are dropped), to store. Swarms it left out wait for the next interval
        without counts. Raises ``UsageError`` for a request that is not in flight."""
        state, hashes, _before = self._finish(request_id)
        state.failures = 0
        state.not_before = 0.0
        results = []
        for info_hash in hashes:
            if info_hash in counts and info_hash in state.last_asked:
                results.append(ScrapeResult(state.target.url, info_hash, counts[info_hash], now))
        return results

    def failed(self, request_id: int, reason: str, now: float) -> ScrapeFailed:
        """``request_id`` got no usable answer: its tracker backs off, and its swarms are
        due again once the backoff ends. Raises ``UsageError`` for a request not in flight."""
        state, hashes, before = self._finish(request_id)
        state.failures += 1
        delay = min(self.backoff_initial_s * 2 ** min(state.failures - 1, 32), self.backoff_max_s)
        state.not_before = now + delay
        for info_hash in hashes:
            if info_hash in state.last_asked:
                # Not answered after all: due again, in its old place, once the backoff ends.
                state.last_asked[info_hash] = before[info_hash]
        return ScrapeFailed(state.target, reason[:300], state.failures, state.not_before)

    def next_deadline(self) -> float | None:
        """When something next falls due (a swarm's interval, a backoff ending), or None
        when nothing is held; requests in flight are not deadlines (their answers are)."""
        deadline: float | None = None
        for state in self._trackers.values():
            if state.in_flight is not None or not state.last_asked:
                continue
            times = list(state.last_asked.values())
            due_at = (
                float("-inf")
                if any(asked is None for asked in times)
                else min(asked for asked in times if asked is not None) + self.rescrape_interval_s
            )
            at = max(due_at, state.not_before)
            deadline = at if deadline is None else min(deadline, at)
        return deadline

    @property
    def in_flight(self) -> int:
        return len(self._requests)

    def stats(self) -> PlanStats:
        return PlanStats(
            len(self._trackers), self._pairs, len(self._requests), self._refused_trackers, self._refused_pairs
        )

    def failures_of(self, target: ScrapeTarget) -> int:
        """Consecutive failures of ``target`` (0 for a tracker not held)."""
        state = self._trackers.get(target)
        return state.failures if state is not None else 0

    def targets(self) -> Sequence[ScrapeTarget]:
        return list(self._trackers)
