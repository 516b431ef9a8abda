"""Serve an ASGI app on a free loopback port in a background thread.

Used by the tests and ``writeback demo`` to run the simulators next to the code
under test. ``ServedApp`` is a context manager: the server is up when it
enters and shut down when it leaves.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from simulators.tls import local_tls


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServedApp:
    """One ASGI app on ``127.0.0.1:<port>``, over TLS when ``tls=True``."""

    def __init__(self, app: Any, *, tls: bool = False, port: int | None = None) -> None:
        self.app = app
        self.tls = tls
        self.port = port or free_port()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> ServedApp:
        options: dict[str, Any] = {}
        if self.tls:
            tls = local_tls()
            options = {"ssl_certfile": tls.cert_file, "ssl_keyfile": tls.key_file}
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            # A client still holding a keep-alive (TLS) connection must not stall shutdown.
            timeout_graceful_shutdown=2,
            **options,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"sim-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"simulator on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> ServedApp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
