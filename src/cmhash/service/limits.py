"""What one request may cost: body bytes, text characters, image pixels, k (see :class:`Limits`).

The body limit is an ASGI middleware, so it applies before FastAPI parses anything: a declared
``Content-Length`` over the limit is refused at once, and a body sent without one (chunked) is
counted as it streams and refused as soon as it passes the limit. Memory per request is then
bounded by the limit, whatever the client sends.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 8 * 1024 * 1024
    max_text_chars: int = 2000
    max_image_pixels: int = 4096 * 4096
    max_k: int = 1000


class TooLarge(ValueError):
    """A request over one of the :class:`Limits` (HTTP 413)."""


def open_image(data: bytes, name: str | None, max_pixels: int) -> Image.Image:
    """Decode an upload to RGB, after checking its size from the header (no pixel is decoded before)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise TooLarge(f"upload {name!r} is {width}x{height} = {width * height:,} pixels; the limit is "
                               f"{max_pixels:,} (downscale it first)")
            return img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, TooLarge):
            raise
        raise ValueError(f"upload {name!r} is not a readable image ({exc})") from None


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``max_bytes`` (declared or streamed)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send, f"request body of {declared.decode(errors='replace')} bytes is over the "
                                     f"limit of {self.max_bytes:,} bytes")
            return
        # Read the body here, counting: it is at most max_bytes, then replayed to the app.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # client went away; the app gets the disconnect
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(send, f"request body is over the limit of {self.max_bytes:,} bytes")
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(send, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
