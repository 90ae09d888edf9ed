"""The simulator as a real HTTP server (``http.server.ThreadingHTTPServer``).

``serve(simulator, host, port)`` binds (port 0 = a free port), starts a daemon thread and
returns ``(server, thread)``; ``server.url`` is the API base URL. Every request is turned
into an ``httpx.Request`` and answered by ``CloseSimulator.handle``; an injected dropped
connection closes the socket without a response.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from .handler import API_PREFIX, CloseSimulator, DroppedConnection

_SKIP_HEADERS = {"content-length", "host", "transfer-encoding", "connection"}


class SimulatorHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server bound to one ``CloseSimulator``."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], simulator: CloseSimulator) -> None:
        super().__init__(address, _RequestHandler)
        self.simulator = simulator

    @property
    def url(self) -> str:
        """``http://HOST:PORT/api/v1``."""
        host, port = self.server_address[0], self.server_address[1]
        return f"http://{host!s}:{port}{API_PREFIX}"


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid 40 ms stalls
    server: SimulatorHTTPServer

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in _SKIP_HEADERS]
        bound_host, bound_port = self.server.server_address[:2]
        host = self.headers.get("Host") or f"{bound_host!s}:{bound_port}"
        request = httpx.Request(
            self.command, f"http://{host}{self.path}", headers=headers, content=body
        )
        try:
            response = self.server.simulator.handle(request)
        except DroppedConnection:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        content = response.content
        self.send_response(response.status_code)
        for key, value in response.headers.items():
            if key.lower() not in ("content-length", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_PATCH = _serve
    do_DELETE = _serve

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Silent: the simulator keeps its own request log."""


def serve(
    simulator: CloseSimulator, host: str = "127.0.0.1", port: int = 0
) -> tuple[SimulatorHTTPServer, threading.Thread]:
    """Starts ``simulator`` as an HTTP server in a daemon thread.

    Args:
        simulator: The handler to serve.
        host: Interface to bind.
        port: TCP port; 0 picks a free one (read it from ``server.url``).

    Returns:
        The server (``server.url``, ``server.shutdown()``, ``server.server_close()``) and the
        thread running ``serve_forever``.
    """
    server = SimulatorHTTPServer((host, port), simulator)
    thread = threading.Thread(target=server.serve_forever, name="close-simulator", daemon=True)
    thread.start()
    return server, thread
