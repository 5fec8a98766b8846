"""An ASGI app served by uvicorn in a background thread (its own event loop).

`portal dev` runs its side listeners this way (the stand-in model, the gateway-only
listener for sandboxes), and the tests start the stand-in model with it.
"""

from __future__ import annotations

import threading
import time
from typing import Self

import uvicorn
from starlette.types import ASGIApp


class BackgroundServer:
    def __init__(
        self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0, name: str = "server"
    ) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=name, daemon=True)

    @property
    def address(self) -> str:
        """http://host:port, with the port the system picked when 0 was asked for."""
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self, timeout: float = 20) -> Self:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"{self.thread.name} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
