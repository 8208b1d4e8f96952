"""The Redis and PostgreSQL the tests talk to: the one place that decides their addresses.

`SUPERVISOR_TEST_REDIS` and `SUPERVISOR_TEST_POSTGRES` (`host:port`) name the servers to try,
by default the system ones (127.0.0.1:6379 and 127.0.0.1:5432, trust auth, user postgres,
database test). When the named server answers, the session uses it. When it does not, the
session starts a private one on a free port in a temporary directory (`redis-server`, or
`initdb` + `pg_ctl` run as the `postgres` user when we are root) and removes it at the end.
Only when the binaries are absent do the tests that need the service skip, with the reason.

Tests that need to take a server away from a fleet (kill it, restart it) use a private server
of their own (`PrivateRedis`, `PrivatePostgres`), never the machine's.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REDIS_ENV = "SUPERVISOR_TEST_REDIS"
POSTGRES_ENV = "SUPERVISOR_TEST_POSTGRES"
DEFAULT_REDIS = "127.0.0.1:6379"
DEFAULT_POSTGRES = "127.0.0.1:5432"
START_TIMEOUT_S = 60.0


class ServiceUnavailable(Exception):
    """No server answers and none can be started here; the message is the skip reason."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_address(value: str, variable: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{variable}={value!r}: expected host:port")
    return host, int(port)


def _poll(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)


# ---------------------------------------------------------------- Redis


def redis_pings(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """True if a Redis server answers PING at host:port (raw RESP: no client library needed)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class PrivateRedis:
    """A redis-server of our own on a free port, so stopping it disturbs nobody else."""

    def __init__(self, directory: Path) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.dir = directory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise ServiceUnavailable("redis-server is not installed")
        self.proc = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", self.host, "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            _poll(lambda: redis_pings(self.host, self.port), 10, "the private redis-server")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


# ---------------------------------------------------------------- PostgreSQL


def postgres_answers(host: str, port: int, timeout_s: int = 2) -> bool:
    """True if PostgreSQL at host:port lets user postgres into database test."""
    import psycopg

    try:
        with psycopg.connect(
            host=host, port=port, user="postgres", dbname="test", connect_timeout=timeout_s
        ) as conn:
            conn.execute("select 1")
        return True
    except psycopg.Error:
        return False


def postgres_bindir() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, or Debian's /usr/lib/postgresql/N/bin (newest)."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent  # e.g. a /usr/local/bin symlink
    versions = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    versions.sort(key=lambda bindir: int(bindir.parent.name) if bindir.parent.name.isdigit() else 0)
    return versions[-1] if versions else None


class PrivatePostgres:
    """A PostgreSQL cluster of our own in a temporary directory, on a free port, trust auth.

    PostgreSQL refuses to run as root, so as root every server command runs as the `postgres`
    system user, who then owns the directory."""

    def __init__(self, directory: Path) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise ServiceUnavailable("initdb/pg_ctl are not installed (no PostgreSQL server)")
        self.bin = bindir
        self.host = "127.0.0.1"
        self.port = free_port()
        self.dir = directory
        self.data = directory / "data"
        self.user = _server_user()

    @property
    def dsn(self) -> str:
        return f"host={self.host} port={self.port} user=postgres dbname=test"

    def _run(self, *argv: str, timeout_s: float = START_TIMEOUT_S) -> None:
        kwargs: dict[str, object] = {}
        if self.user is not None:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        result = subprocess.run(
            [str(self.bin / argv[0]), *argv[1:]],
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            **kwargs,  # type: ignore[arg-type]
        )
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()}")

    def create(self) -> None:
        """initdb, start, and the `test` database."""
        if self.user is not None:
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync", "--no-instructions")  # fmt: skip
        self.start()
        self._run("createdb", "-h", self.host, "-p", str(self.port), "-U", "postgres", "test")

    def start(self) -> None:
        # No durability: the cluster lives for one session. The socket goes in our directory,
        # never /var/run/postgresql, which belongs to the machine's server.
        options = (
            f"-h {self.host} -p {self.port} -k {self.dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        log = str(self.dir / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "-t", "60",
                  "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()


def _server_user() -> pwd.struct_passwd | None:
    """The user to run the server as: `postgres` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError as e:
        raise ServiceUnavailable("running as root and there is no `postgres` user") from e


# ---------------------------------------------------------------- the session's servers


@dataclass
class Service:
    """Where a test finds a server; `private` is set when the session started it."""

    host: str
    port: int
    private: PrivateRedis | PrivatePostgres | None = None
    start_s: float = 0.0


class RedisService(Service):
    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"


class PostgresService(Service):
    @property
    def dsn(self) -> str:
        return f"host={self.host} port={self.port} user=postgres dbname=test"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/test"


def temp_dir(kind: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"sv-test-{kind}-", dir="/tmp"))


def open_redis() -> RedisService:
    """The Redis named by $SUPERVISOR_TEST_REDIS if it answers, else a private one."""
    host, port = parse_address(os.environ.get(REDIS_ENV, DEFAULT_REDIS), REDIS_ENV)
    if redis_pings(host, port):
        return RedisService(host, port)
    began = time.monotonic()
    server = PrivateRedis(temp_dir("redis"))
    try:
        server.start()
    except BaseException:
        shutil.rmtree(server.dir, ignore_errors=True)
        raise
    return RedisService(server.host, server.port, server, time.monotonic() - began)


def open_postgres() -> PostgresService:
    """The PostgreSQL named by $SUPERVISOR_TEST_POSTGRES if it answers, else a private one."""
    host, port = parse_address(os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES), POSTGRES_ENV)
    if postgres_answers(host, port):
        return PostgresService(host, port)
    began = time.monotonic()
    server = start_private_postgres()
    return PostgresService(server.host, server.port, server, time.monotonic() - began)


def start_private_postgres() -> PrivatePostgres:
    directory = temp_dir("pg")
    try:
        server = PrivatePostgres(directory)
        server.create()
    except BaseException:
        with contextlib.suppress(Exception):
            PrivatePostgres(directory).stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return server


def close(service: Service) -> None:
    """Stop and remove a server the session started; a system server is left alone."""
    server = service.private
    if server is None:
        return
    try:
        if isinstance(server, PrivatePostgres):
            server.stop("immediate")
        else:
            server.stop()
    finally:
        shutil.rmtree(server.dir, ignore_errors=True)
