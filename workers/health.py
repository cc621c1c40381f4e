"""Health endpoints of a worker process, for orchestrators and `tunesmith status`.

`GET /healthz`: the process is alive and its event loop answers. `GET /readyz`: every
dependency answered just now (Temporal, PostgreSQL, the object store) and the worker is polling
its queues (a GPU worker only after its models are loaded); 503 with the failing checks
otherwise. Both answer JSON. A plain asyncio server: no dependency, no thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("tunesmith.worker")

Check = Callable[[], Awaitable[object]]
CHECK_TIMEOUT_S = 3.0


class HealthServer:
    """Serves /healthz and /readyz; `ready` is set once the worker polls its queues."""

    def __init__(self, checks: dict[str, Check]) -> None:
        self.checks = checks
        self.ready = False
        self.stopping = False
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0: any free port); returns the bound port."""
        self._server = await asyncio.start_server(self._handle, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        """(ready, check -> "ok" or the error) — all checks run concurrently, each bounded."""

        async def one(check: Check) -> str:
            try:
                await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
            except TimeoutError:
                return f"no answer within {CHECK_TIMEOUT_S:g} s"
            except Exception as exc:  # a failing dependency is an answer, not a crash
                return f"{type(exc).__name__}: {exc}"[:300]
            return "ok"

        names = list(self.checks)
        answers = await asyncio.gather(*(one(self.checks[n]) for n in names))
        results = dict(zip(names, answers, strict=True))
        results["polling"] = (
            "stopping" if self.stopping else "ok" if self.ready else "not polling yet"
        )
        return all(v == "ok" for v in results.values()), results

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass  # headers: nothing we need
            parts = request.decode(errors="replace").split()
            path = parts[1].split("?")[0] if len(parts) >= 2 else ""
            body: dict[str, object]
            if parts[:1] != ["GET"] or path not in ("/healthz", "/readyz"):
                status, body = 404, {"error": "GET /healthz or /readyz"}
            elif path == "/healthz":
                status, body = 200, {"status": "alive"}
            else:
                ok, checks = await self.readiness()
                status, body = (200 if ok else 503), {"ready": ok, "checks": checks}
            data = json.dumps(body).encode()
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
