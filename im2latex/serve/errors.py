"""How the API refuses a request: one exception type carrying an HTTP status, and the body-size guard."""
from fastapi.responses import JSONResponse


class ApiError(Exception):
    """A refusal the client gets as JSON {"error": message} with `status` (and `headers`, e.g. Retry-After)."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class BodyLimit:
    """ASGI middleware: 413 for a body over `limit` bytes, from Content-Length before reading, or as it streams."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await _too_large(self.limit, send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise ApiError(413, f"request body over {self.limit} bytes")
            return message

        try:
            await self.app(scope, limited_receive, send)
        except ApiError as e:
            if e.status != 413:
                raise
            await _too_large(self.limit, send)


async def _too_large(limit: int, send) -> None:
    response = JSONResponse({"error": f"request body over {limit} bytes"}, status_code=413, headers={"Connection": "close"})
    await response({"type": "http"}, None, send)
