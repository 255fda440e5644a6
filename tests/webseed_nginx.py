"""A real nginx (Debian's nginx-light) serving a folder on 127.0.0.1, for BEP 19 web seeds.

The server runs in the foreground in single-process mode (``daemon off; master_process
off``), so the process we start is the one that serves and the one we end, by its PID.
Its configuration, logs and temporary folders live under a prefix of the caller's; it
listens on a free port of 127.0.0.1. The access log has one line per request:
``CONNECTION REQUEST_NUMBER STATUS BYTES "REQUEST LINE"``, so a test or a bench can count
the connections a client opened and the requests it sent over each.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
# Where Debian puts it; /usr/sbin is not on every user's PATH.
NGINX_FALLBACK = "/usr/sbin/nginx"

CONFIG = """\
daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 512; }}
http {{
    default_type application/octet-stream;
    log_format counted '$connection $connection_requests $status $body_bytes_sent "$request"';
    access_log {prefix}/access.log counted;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    sendfile on;
    keepalive_requests 10000;
    {http_extra}
    server {{
        listen 127.0.0.1:{port};
        {server_body}
    }}
}}
"""


@dataclass(frozen=True, slots=True)
class Nginx:
    """A running nginx: its base URL (ending in ``/``), its process and its access log."""

    url: str
    process: subprocess.Popen[bytes]
    access_log: Path

    def requests(self) -> list[tuple[int, int, int, int, str]]:
        """(connection, request number on it, status, body bytes, request line) per request so far."""
        rows = []
        for line in self.access_log.read_text("utf-8", "replace").splitlines():
            connection, number, status, sent, request = line.split(" ", 4)
            rows.append((int(connection), int(number), int(status), int(sent), request.strip('"')))
        return rows


def nginx_binary() -> str | None:
    """nginx's path, or None when Debian's nginx-light (or nginx) is not installed."""
    found = shutil.which("nginx")
    if found is None and os.access(NGINX_FALLBACK, os.X_OK):
        found = NGINX_FALLBACK
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


@contextmanager
def serve_with_nginx(
    root: Path, prefix: Path, binary: str, *, server_body: str | None = None, http_extra: str = ""
) -> Iterator[Nginx]:
    """nginx serving ``root`` at the yielded ``Nginx.url`` until the block ends; then it is
    stopped (SIGTERM, then SIGKILL) by its PID. Raises RuntimeError when it does not start.
    ``server_body`` replaces the ``root`` directive (a reverse proxy's locations, say);
    ``http_extra`` goes in the ``http`` block (a ``limit_conn_zone``, say)."""
    prefix.mkdir(parents=True, exist_ok=True)
    prefix = prefix.resolve()
    errors: list[str] = []
    for _attempt in range(3):  # the free port may be taken between the probe and nginx's bind
        port = _free_port()
        config = prefix / "nginx.conf"
        body = server_body if server_body is not None else f"root {root.resolve()};"
        config.write_text(CONFIG.format(prefix=prefix, port=port, server_body=body, http_extra=http_extra))
        process = subprocess.Popen(
            [binary, "-p", str(prefix), "-c", str(config), "-e", str(prefix / "error.log")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while process.poll() is None and not _accepts(port) and time.monotonic() < deadline:
                time.sleep(0.02)  # polling for the listening socket
            if process.poll() is None and _accepts(port):
                yield Nginx(f"http://127.0.0.1:{port}/", process, prefix / "access.log")
                return
            errors.append((process.stderr.read() if process.poll() is not None and process.stderr else b"").decode())
        finally:
            _stop(process)
    raise RuntimeError(f"nginx did not start: {' | '.join(error.strip() for error in errors)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT_S)
    if process.stderr is not None:
        process.stderr.close()
