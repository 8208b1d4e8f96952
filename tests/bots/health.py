"""A bot without the SDK that serves /healthz on $PORT: 200, or 500 once $HEALTH_FAIL_FILE
exists. With $HEALTH_LISTEN_FILE it opens its port only once that file exists (a slow start)."""

from __future__ import annotations

import http.server
import os
import time


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        failing = os.path.exists(os.environ.get("HEALTH_FAIL_FILE", "/nonexistent"))
        self.send_response(500 if failing else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a probe a second would flood the log."""


def main() -> None:
    listen_file = os.environ.get("HEALTH_LISTEN_FILE")
    while listen_file and not os.path.exists(listen_file):
        time.sleep(0.05)
    server = http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Health)
    server.serve_forever()


if __name__ == "__main__":
    main()
