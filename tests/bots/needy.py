"""A worker that cannot work without Redis (no SDK): it exits as soon as a PING fails."""

from __future__ import annotations

import os
import socket
import time


def main() -> None:
    port = int(os.environ["REDIS_PORT"])
    while True:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            if not s.recv(64).startswith(b"+PONG"):
                raise SystemExit("redis did not answer PING")
        time.sleep(0.05)


if __name__ == "__main__":
    main()
