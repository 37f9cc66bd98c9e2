"""Google API errors as the emulator returns them: canonical status, HTTP code and message."""

from __future__ import annotations

from typing import Any

import grpc

# Canonical codes (google.rpc.Code) with the HTTP code Google's front end maps them to.
_STATUS: dict[str, tuple[int, int, grpc.StatusCode]] = {
    "INVALID_ARGUMENT": (3, 400, grpc.StatusCode.INVALID_ARGUMENT),
    "FAILED_PRECONDITION": (9, 400, grpc.StatusCode.FAILED_PRECONDITION),
    "OUT_OF_RANGE": (11, 400, grpc.StatusCode.OUT_OF_RANGE),
    "NOT_FOUND": (5, 404, grpc.StatusCode.NOT_FOUND),
    "ALREADY_EXISTS": (6, 409, grpc.StatusCode.ALREADY_EXISTS),
    "PERMISSION_DENIED": (7, 403, grpc.StatusCode.PERMISSION_DENIED),
    "RESOURCE_EXHAUSTED": (8, 429, grpc.StatusCode.RESOURCE_EXHAUSTED),
    "INTERNAL": (13, 500, grpc.StatusCode.INTERNAL),
    "UNIMPLEMENTED": (12, 501, grpc.StatusCode.UNIMPLEMENTED),
    "UNAVAILABLE": (14, 503, grpc.StatusCode.UNAVAILABLE),
    "DEADLINE_EXCEEDED": (4, 504, grpc.StatusCode.DEADLINE_EXCEEDED),
}


class ApiError(Exception):
    """An error the emulated API returns to its caller, in Google's shape."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        if status not in _STATUS:
            raise ValueError(f"unknown status {status}")
        self.status = status
        self.message = message

    @property
    def code(self) -> int:
        """The google.rpc.Code number (3 for INVALID_ARGUMENT, ...)."""
        return _STATUS[self.status][0]

    @property
    def http_status(self) -> int:
        return _STATUS[self.status][1]

    @property
    def grpc_status(self) -> grpc.StatusCode:
        return _STATUS[self.status][2]

    def to_json(self) -> dict[str, Any]:
        """The body Google's REST front end sends: {"error": {"code", "message", "status"}}."""
        return {"error": {"code": self.http_status, "message": self.message, "status": self.status}}


def invalid(message: str) -> ApiError:
    return ApiError("INVALID_ARGUMENT", message)


def not_found(message: str) -> ApiError:
    return ApiError("NOT_FOUND", message)


def already_exists(message: str) -> ApiError:
    return ApiError("ALREADY_EXISTS", message)


def failed_precondition(message: str) -> ApiError:
    return ApiError("FAILED_PRECONDITION", message)
