"""The latest committed history events of recently changed runs, kept by the engine of one process.

The reads that follow a change mostly ask for events that process has just written: the history of
the workflow task a poll hands out, the close event a waiting ``result()`` asks for, the scheduled
event of an activity task. Events never change once committed, so a copy taken at commit time is
as good as a query. The cache only answers for a range that ends inside what it holds: events
another process appended since are not here, and such a range goes to the database."""

from __future__ import annotations

from collections import OrderedDict

from temporalio.api.history.v1 import HistoryEvent

MAX_BYTES = 32 * 1024 * 1024  # serialized size of all events held
MAX_EVENTS_PER_RUN = 1000  # the newest ones of a run


class _Tail:
    __slots__ = ("first", "events", "sizes")

    def __init__(self, first: int) -> None:
        self.first = first  # event id of events[0]
        self.events: list[HistoryEvent] = []
        self.sizes: list[int] = []

    @property
    def next(self) -> int:
        return self.first + len(self.events)


class EventCache:
    def __init__(self, max_bytes: int = MAX_BYTES, max_events_per_run: int = MAX_EVENTS_PER_RUN) -> None:
        self.max_bytes = max_bytes
        self.max_events_per_run = max_events_per_run
        self._runs: OrderedDict[str, _Tail] = OrderedDict()
        self._bytes = 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def add(self, run_id: str, events: list[HistoryEvent]) -> None:
        """Events of ``run_id`` just committed, contiguous and in order."""
        if not events:
            return
        tail = self._runs.pop(run_id, None)
        if tail is not None and tail.next != events[0].event_id:
            self._bytes -= sum(tail.sizes)  # a gap (another process wrote in between): start over
            tail = None
        if tail is None:
            tail = _Tail(events[0].event_id)
        for event in events:
            size = event.ByteSize()
            tail.events.append(event)
            tail.sizes.append(size)
            self._bytes += size
        extra = len(tail.events) - self.max_events_per_run
        if extra > 0:
            self._bytes -= sum(tail.sizes[:extra])
            del tail.events[:extra], tail.sizes[:extra]
            tail.first += extra
        self._runs[run_id] = tail
        while self._bytes > self.max_bytes and self._runs:
            _, evicted = self._runs.popitem(last=False)
            self._bytes -= sum(evicted.sizes)

    def drop(self, run_id: str) -> None:
        tail = self._runs.pop(run_id, None)
        if tail is not None:
            self._bytes -= sum(tail.sizes)

    def suffix(self, run_id: str, first: int, end: int) -> tuple[int, list[HistoryEvent]]:
        """The cached part of events ``first`` <= id < ``end``: (id of its first event, the events,
        a new list). It is always a suffix of the range; it is empty (and its id ``end``) unless
        the cache holds the range's last event."""
        tail = self._runs.get(run_id)
        if tail is None or end <= first or not tail.first < end <= tail.next:
            return end, []
        self._runs.move_to_end(run_id)
        start = max(first, tail.first)
        return start, tail.events[start - tail.first : end - tail.first]
