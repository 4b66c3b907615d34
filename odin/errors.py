"""One error hierarchy for every door; each adapter maps it to its wire format in one place."""

from __future__ import annotations

from google.protobuf.message import Message


class OdinError(Exception):
    """Base error. ``code`` is a gRPC status name; ``detail`` an optional errordetails proto."""

    code = "INTERNAL"
    http_status = 500

    def __init__(self, message: str, detail: Message | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail
        # Seconds after which a retry may succeed (rate limits); doors pass it on as a hint.
        self.retry_after = retry_after


class InvalidArgument(OdinError):
    code = "INVALID_ARGUMENT"
    http_status = 400


class Unauthenticated(OdinError):
    code = "UNAUTHENTICATED"
    http_status = 401


class PermissionDenied(OdinError):
    code = "PERMISSION_DENIED"
    http_status = 403


class NotFound(OdinError):
    code = "NOT_FOUND"
    http_status = 404


class AlreadyExists(OdinError):
    code = "ALREADY_EXISTS"
    http_status = 409


class FailedPrecondition(OdinError):
    code = "FAILED_PRECONDITION"
    http_status = 400


class ResourceExhausted(OdinError):
    code = "RESOURCE_EXHAUSTED"
    http_status = 429


class DeadlineExceeded(OdinError):
    code = "DEADLINE_EXCEEDED"
    http_status = 504


class Unavailable(OdinError):
    code = "UNAVAILABLE"
    http_status = 503


class Unimplemented(OdinError):
    code = "UNIMPLEMENTED"
    http_status = 501


class ConcurrentUpdate(Exception):
    """A compare-and-swap on a workflow's ``db_version`` lost; the engine reloads and retries."""


class ScheduleConflict(ConcurrentUpdate):
    """A compare-and-swap on a schedule's row lost (another process changed the schedule)."""


class ShardOwnershipLost(Exception):
    """A shard queue processor's write was fenced off: another process now holds the shard."""


def infrastructure_error(exc: BaseException) -> OdinError | None:
    """What a client should hear about a database or Redis exception: UNAVAILABLE (which clients
    retry) for a passing fault (connection lost, timeout), INVALID_ARGUMENT for a value the
    database refused to store (the transaction rolled back: nothing changed); None otherwise."""
    import redis.exceptions
    import sqlalchemy.exc

    if isinstance(exc, sqlalchemy.exc.OperationalError) or (
        isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated
    ):
        return Unavailable("The database is temporarily unavailable; retry the call.")
    if isinstance(exc, sqlalchemy.exc.DataError):
        return InvalidArgument("A value in the request cannot be stored (for example a NUL character or a number out of range).")
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return Unavailable("Redis is temporarily unavailable; retry the call.")
    return None
