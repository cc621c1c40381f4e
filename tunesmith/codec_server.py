"""A Temporal codec server: the Web UI (and `temporal --codec-endpoint`) decrypt payloads here.

It speaks Temporal's remote codec protocol: `POST /encode` and `POST /decode` with a JSON body
`{"payloads": [{"metadata": {...}, "data": "<base64>"}]}`. Only callers with the token get an
answer: `Authorization: Bearer <token>`, or the token as the first path segment
(`http://127.0.0.1:8081/<token>`), which is how the Web UI's "codec endpoint" setting can carry
it. CORS answers only the configured Web UI origin.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from infra.codec import EncryptionCodec, PayloadDecryptionError

MAX_BODY = 8 * 2**20


def make_codec_server(
    codec: EncryptionCodec, *, token: str, origin: str | None, port: int, host: str = "127.0.0.1"
) -> ThreadingHTTPServer:
    """An HTTP server on host:port (0: any free port) answering encode/decode for `token`."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:  # quiet: payload sizes are not news
            pass

        def _cors(self) -> None:
            request_origin = self.headers.get("Origin")
            if origin and request_origin == origin:
                self.send_header("Access-Control-Allow-Origin", origin)
                self.send_header("Access-Control-Allow-Credentials", "true")
                self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
                self.send_header(
                    "Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization"
                )
                self.send_header("Vary", "Origin")

        def _reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self._cors()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_OPTIONS(self) -> None:
            self.send_response(HTTPStatus.NO_CONTENT)
            self._cors()
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _action(self) -> str | None:
            """`encode`/`decode` when the caller proved the token, else None."""
            parts = [p for p in self.path.split("?", 1)[0].split("/") if p]
            bearer = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if len(parts) == 2 and hmac.compare_digest(parts[0].encode(), token.encode()):
                parts = parts[1:]
            elif not (bearer and hmac.compare_digest(bearer.encode(), token.encode())):
                return None
            return parts[0] if parts and parts[0] in ("encode", "decode") else ""

        def do_POST(self) -> None:
            action = self._action()
            if action is None:
                return self._reply(HTTPStatus.UNAUTHORIZED, {"message": "bad or missing token"})
            if not action:
                return self._reply(HTTPStatus.NOT_FOUND, {"message": "POST /encode or /decode"})
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"message": "too large"})
            try:
                payloads = json_format.Parse(self.rfile.read(length), Payloads())
            except (json_format.ParseError, UnicodeDecodeError) as exc:
                return self._reply(HTTPStatus.BAD_REQUEST, {"message": f"not Payloads: {exc}"})
            run = codec.encode if action == "encode" else codec.decode
            try:
                out = asyncio.run(run(list(payloads.payloads)))
            except PayloadDecryptionError as exc:
                return self._reply(HTTPStatus.UNPROCESSABLE_ENTITY, {"message": str(exc)})
            body = json_format.MessageToDict(Payloads(payloads=out))
            self._reply(HTTPStatus.OK, body)

    return ThreadingHTTPServer((host, port), Handler)
