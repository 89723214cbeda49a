"""One JSON error shape for every 4xx/5xx: ``{"error": {"code", "message", "details"}}``.

Exception classes carry their HTTP status and a stable machine-readable ``code``. The error
handler turns *every* exception (ours, Sanic's own routing/protocol errors, unexpected bugs)
into that shape; a stack trace or SQL text never reaches a client (unexpected errors are logged
server-side and answered with a generic 500).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from sanic import HTTPResponse, Request
from sanic.exceptions import SanicException
from sanic.handlers import ErrorHandler

log = logging.getLogger("api.errors")

#: A 5xx of ours (503 database_busy, ...) is logged at most this often per code and worker.
LOG_5XX_EVERY_SECONDS = 1.0
_last_5xx_log: dict[str, float] = {}

#: Status recorded (metrics only: nobody receives it) for a request whose client went away.
CLIENT_CLOSED = 499

#: HTTP status -> error code for Sanic's own exceptions (routing, protocol, limits).
STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    411: "length_required",
    413: "payload_too_large",
    414: "uri_too_long",
    416: "range_not_satisfiable",
    417: "expectation_failed",
    429: "rate_limited",
    431: "request_header_fields_too_large",
    500: "internal_error",
    503: "service_unavailable",
}


class ApiError(SanicException):
    """Base of our errors: status + code + message + details."""

    status_code = 500
    code = "internal_error"
    quiet = True

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, status_code=self.status_code, headers=headers)
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details or {}

    def answer(self) -> tuple[int, bytes]:
        """(status, JSON error body): for an answer stored in the cache instead of raised
        (a cached 404), rendered exactly as the handler renders a raised one."""
        return self.status_code, error_body(self.code, str(self.message), self.details)


class InvalidParameter(ApiError):
    """A query or path parameter is malformed; ``details.parameter`` names it."""

    status_code = 400
    code = "invalid_parameter"


class NotFound(ApiError):
    status_code = 404
    code = "not_found"

    @classmethod
    def product(cls, slug: str) -> NotFound:
        """No product (read model row) has this slug."""
        return cls(f"No product with slug '{slug}'", details={"parameter": "slug", "value": slug})


class RateLimited(ApiError):
    status_code = 429
    code = "rate_limited"


class ServiceUnavailable(ApiError):
    """Postgres is unreachable (or a statement timed out) and the answer is not cached."""

    status_code = 503
    code = "service_unavailable"


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "details": details or {}}})


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> HTTPResponse:
    hdrs = {"Cache-Control": "no-store"}
    hdrs.update(headers or {})
    return HTTPResponse(
        error_body(code, message, details),
        status=status,
        headers=hdrs,
        content_type="application/json",
    )


class JsonErrorHandler(ErrorHandler):
    """Renders every exception as the JSON error shape."""

    def default(self, request: Request, exception: Exception) -> HTTPResponse:
        if isinstance(exception, asyncio.CancelledError):
            # sanic's RequestCancelled: the client disconnected (timeout, closed tab) before the
            # answer was ready. Not an error of ours; any shared cache load carries on.
            log.debug("client went away: %s", _safe_url(request))
            return error_response(CLIENT_CLOSED, "client_closed_request", "Client went away")
        if isinstance(exception, ApiError):
            headers = dict(exception.headers or {})
            if exception.status_code >= 500:
                _log_5xx(request, exception)
                headers["X-Request-ID"] = _request_id(request)
            return error_response(
                exception.status_code,
                exception.code,
                str(exception.message),
                exception.details,
                headers,
            )
        if isinstance(exception, SanicException):
            status = int(exception.status_code or 500)
            code = STATUS_CODES.get(status, "http_error" if status < 500 else "internal_error")
            headers = dict(getattr(exception, "headers", None) or {})
            if status >= 500:
                self.log(request, exception)
                message = "Internal server error"
            else:
                message = _client_message(status, exception)
            details: dict[str, Any] = {}
            if status == 405:
                allowed = headers.get("Allow") or headers.get("allow")
                if allowed:
                    details["allowed_methods"] = [m.strip() for m in allowed.split(",")]
            if status == 404 and request is not None:
                details["path"] = request.path
            return error_response(status, code, message, details, headers)
        # a bug: log the traceback server-side, answer generically
        request_id = _request_id(request)
        log.error(
            "500 internal_error on %s (request %s)", _safe_url(request), request_id,
            exc_info=exception,
        )
        return error_response(
            500, "internal_error", "Internal server error", headers={"X-Request-ID": request_id}
        )


def _log_5xx(request: Request | None, exception: ApiError) -> None:
    """One WARNING line per code and second: what failed and why (the cause's type and text),
    so an operator sees 503s without a traceback per request under overload."""
    now = time.monotonic()
    if now - _last_5xx_log.get(exception.code, 0.0) < LOG_5XX_EVERY_SECONDS:
        return
    _last_5xx_log[exception.code] = now
    cause = exception.__cause__
    why = f"{type(cause).__name__}: {cause}" if cause is not None else "-"
    log.warning(
        "%s %s on %s (request %s, cause %s)", exception.status_code, exception.code,
        _safe_url(request), _request_id(request), why[:300],
    )


def _request_id(request: Request | None) -> str:
    """Sanic's request id (the client's X-Request-ID when it sent one, else a new UUID): in the
    5xx log line and the response header, so a report can be matched to its line."""
    try:
        return str(request.id) if request is not None else "-"
    except Exception:  # noqa: BLE001 - logging must not raise
        return "-"


def _client_message(status: int, exception: SanicException) -> str:
    defaults = {
        404: "No such resource",
        405: "Method not allowed",
        413: "Request too large",
        414: "Request line too long",
        431: "Request headers too large",
    }
    if status in defaults:
        return defaults[status]
    text = str(exception.message or "").strip()
    # Sanic's own 4xx messages are short and safe; keep them but never very long
    return text[:200] if text else "Bad request"


def _safe_url(request: Request | None) -> str:
    try:
        return repr(request.url) if request is not None else "unknown"
    except Exception:  # noqa: BLE001 - logging must not raise
        return "unknown"
