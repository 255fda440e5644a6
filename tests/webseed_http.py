"""A tiny HTTP file server with Range support, for BEP 19 web seed tests (127.0.0.1, port 0)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

RANGE = re.compile(r"bytes=(\d+)-(\d+)$")


@contextmanager
def serve_folder(
    root: Path, *, corrupt: Callable[[str], bool] = lambda _path: False, requests: list[str] | None = None
) -> Iterator[str]:
    """Serve ``root`` at the yielded base URL; files whose URL path ``corrupt`` picks are served inverted."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path)
            if requests is not None:
                requests.append(path)
            target = (root / path.lstrip("/")).resolve()
            if not target.is_relative_to(root.resolve()) or not target.is_file():
                self.send_error(404)
                return
            data = target.read_bytes()
            if corrupt(path):
                data = bytes(255 - byte for byte in data)
            match = RANGE.match(self.headers.get("Range", ""))
            if match is None:
                self.send_response(200)
                body = data
            else:
                first, last = int(match.group(1)), min(int(match.group(2)), len(data) - 1)
                body = data[first : last + 1]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
