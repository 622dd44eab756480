"""The server's exceptions: one tree, mapped to HTTP in `flagd.http.handlers`.

    FlagdError                      500 internal_error
    ├── BadRequest                  400 bad_request
    │   ├── MalformedBody           400 malformed_body
    │   └── InvalidParameter        400 invalid_parameter
    ├── Unauthorized                401 unauthorized
    ├── Forbidden                   403 forbidden
    ├── NotFound                    404 not_found
    ├── MethodNotAllowed            405 method_not_allowed
    ├── Conflict                    409 conflict
    ├── PreconditionFailed          412 precondition_failed
    ├── PreconditionRequired        428 precondition_required
    ├── PayloadTooLarge             413 payload_too_large
    ├── UnsupportedMediaType        415 unsupported_media_type
    ├── ValidationFailed            422 validation_failed   (carries located problems)
    └── ServiceUnavailable          503 service_unavailable
        └── DatabaseUnavailable     503 database_unavailable

Every error has a stable machine-readable `code` and a message that says what was
wrong and how to fix it. Lower-level errors are translated once, where they are
caught, with `raise ... from exc`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar


class FlagdError(Exception):
    default_status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.status = status if status is not None else self.default_status
        self.details = list(details) if details is not None else None
        self.headers = dict(headers) if headers is not None else None


class BadRequest(FlagdError):
    default_status = 400
    default_code = "bad_request"


class MalformedBody(BadRequest):
    default_code = "malformed_body"


class InvalidParameter(BadRequest):
    default_code = "invalid_parameter"


class Unauthorized(FlagdError):
    default_status = 401
    default_code = "unauthorized"


class Forbidden(FlagdError):
    default_status = 403
    default_code = "forbidden"


class NotFound(FlagdError):
    default_status = 404
    default_code = "not_found"


class MethodNotAllowed(FlagdError):
    default_status = 405
    default_code = "method_not_allowed"


class Conflict(FlagdError):
    default_status = 409
    default_code = "conflict"


class PreconditionFailed(FlagdError):
    default_status = 412
    default_code = "precondition_failed"


class PreconditionRequired(FlagdError):
    default_status = 428
    default_code = "precondition_required"


class PayloadTooLarge(FlagdError):
    default_status = 413
    default_code = "payload_too_large"


class UnsupportedMediaType(FlagdError):
    default_status = 415
    default_code = "unsupported_media_type"


class ValidationFailed(FlagdError):
    default_status = 422
    default_code = "validation_failed"


class ServiceUnavailable(FlagdError):
    default_status = 503
    default_code = "service_unavailable"


class DatabaseUnavailable(ServiceUnavailable):
    default_code = "database_unavailable"
