"""The per-namespace search-attribute registry, cached in-process (invalidated on change here)."""

from __future__ import annotations

from dataclasses import dataclass

from odin.clock import monotonic
from odin.persistence.store import ExecutionStore

CACHE_TTL = 300.0


@dataclass
class _Entry:
    types: dict[str, int]
    at: float


class SearchAttributeRegistry:
    def __init__(self, store: ExecutionStore):
        self.store = store
        self._cache: dict[str, _Entry] = {}

    async def custom(self, namespace_id: str) -> dict[str, int]:
        """The namespace's registered (custom) attributes: name -> IndexedValueType."""
        entry = self._cache.get(namespace_id)
        if entry is None or monotonic() - entry.at > CACHE_TTL:
            entry = _Entry(await self.store.get_search_attributes(namespace_id), monotonic())
            self._cache[namespace_id] = entry
        return entry.types

    def invalidate(self, namespace_id: str) -> None:
        self._cache.pop(namespace_id, None)
