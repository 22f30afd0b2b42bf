"""The one error type of the emulated API, rendered as PlanetScale renders errors.

PlanetScale answers failures with an HTTP status and a body `{"code": ..., "message": ...}`;
clients (planetscale-go, our engine) branch on `code` (`not_found`, `unauthorized`,
`unprocessable`, `invalid_params`...), so the emulator uses the same codes.
"""

from __future__ import annotations


class ApiError(Exception):
    """A failure answered to the client with `status` and PlanetScale's error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def unprocessable(message: str) -> ApiError:
    return ApiError(422, "unprocessable", message)


def invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_params", message)
