"""Limits and checks shared by the frontend's calls."""

from __future__ import annotations

from odin.errors import InvalidArgument

MAX_ID_LENGTH = 1000
CLUSTER_NAME = "active"
MAX_NAMESPACE_LENGTH = 255
NAMESPACE_CACHE_TTL = 300.0
DEFAULT_RETENTION = 72 * 3600.0
DEFAULT_HISTORY_PAGE = 256
MAX_LIST_PAGE = 1000
# Longest a history long poll waits before answering "nothing yet" (Temporal: 20 s).
HISTORY_LONG_POLL = 20.0


def check_id(value: str, what: str, limit: int = MAX_ID_LENGTH) -> None:
    """Set, at most ``limit`` bytes of UTF-8 (Temporal counts an id's bytes), no NUL."""
    if not value:
        raise InvalidArgument(f"{what} is not set on request.")
    if len(value.encode()) > limit:
        raise InvalidArgument(f"{what} exceeds length limit of {limit}.")
    check_text(value, what)


def check_text(value: str, what: str) -> None:
    """Text that ends up in an indexed column may not hold NUL (PostgreSQL cannot store it)."""
    if "\x00" in value:
        raise InvalidArgument(f"{what} contains a NUL character.")


def check_enum(enum, value: int, what: str) -> None:
    """A protobuf enum field holds one of its enum's numbers (protobuf keeps unknown ones)."""
    if value not in enum.values():
        raise InvalidArgument(f"Invalid {what}: {value}.")


MAX_OFFSET = 2**62


def page_size(requested: int, default: int, maximum: int | None = None) -> int:
    """The page size to use: the default for zero or less (as Temporal), at most ``maximum``."""
    size = requested if requested > 0 else default
    return min(size, maximum) if maximum else size


def offset_token(token: bytes) -> int:
    """A page token holding a row offset (empty: the first page)."""
    try:
        offset = int(token or b"0")
    except ValueError:
        offset = -1
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidArgument("Invalid NextPageToken.")
    return offset
