"""The server's client errors: the contract's RequestError plus an HTTP status and the field at fault."""

from __future__ import annotations

from cad2program.server.contract import RequestError


class ClientError(RequestError):
    """A request the server refuses; `status` is the HTTP status (4xx, or 503/504 when it cannot serve now)."""

    def __init__(self, message: str, status: int = 400, param: str | None = None):
        super().__init__(message)
        self.status, self.param = status, param


def status_of(err: RequestError) -> int:
    """The contract's own RequestErrors are the client's fault (400), except an oversized image (413)."""
    if isinstance(err, ClientError):
        return err.status
    return 413 if "too large" in str(err) else 400
