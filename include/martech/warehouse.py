"""The warehouse: an embedded PostgreSQL by default, any PostgreSQL when a URL is given.

Resolution order for the URL (the library never reads Airflow state; DAG tasks resolve the Airflow
connection ``warehouse`` themselves and pass its URL in):

1. an explicit URL argument,
2. ``MARTECH_WAREHOUSE_URL``,
3. the embedded server under ``.martech/warehouse/``, started on demand.

The embedded server is a real PostgreSQL 16 from the ``pgserver`` wheel. It listens on a unix socket in
its own folder and on 127.0.0.1 at a port chosen once and kept in ``.martech/warehouse/port``, so the
URL an analyst pastes into psql or a BI tool stays the same across restarts. It keeps running after
the process that started it exits (later runs reuse it) until ``martech warehouse stop``.

:class:`Warehouse` is what the stages are handed: the URL, one engine per process opened on first use,
and the few settings the stages read (the shop database, the email transport).
A DAG task, the CLI or a test builds it once and passes it down, the way Dagster injects a resource.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from martech.paths import home

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

DATABASE = "martech"
_PORT_RANGE = range(54330, 54430)


class WarehouseError(RuntimeError):
    pass


@dataclass
class Warehouse:
    """The warehouse as one resource: its URL, a lazily opened engine, and the settings the stages read.

    ``shop_url`` / ``shop_schema``: the shop's operational database (None: the ``shop`` schema of the
    warehouse); ``transport_settings``: the email transport's name and settings (``name`` is one of
    ``outbox``, ``smtp``, ``sendgrid``; empty: ``MARTECH_TRANSPORT`` and its variables).
    """

    url: str
    shop_url: str | None = None
    shop_schema: str | None = None
    transport_settings: Mapping[str, Any] = field(default_factory=dict)
    _engine: Engine | None = field(default=None, init=False, repr=False, compare=False)
    _pid: int | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def resolve(cls, url: str | None = None, **settings: Any) -> Warehouse:
        """The warehouse named by ``url``, else ``MARTECH_WAREHOUSE_URL``, else the embedded one."""
        return cls(resolve_url(url), **settings)

    @property
    def engine(self) -> Engine:
        """One engine per process: a forked worker opens its own instead of sharing the parent's sockets."""
        if self._engine is None or self._pid != os.getpid():
            from martech.db import make_engine

            self._engine, self._pid = make_engine(self.url), os.getpid()
        return self._engine

    def dispose(self) -> None:
        """Close the pooled connections; the next use of :attr:`engine` opens a new engine."""
        if self._engine is not None and self._pid == os.getpid():
            self._engine.dispose()
        self._engine = self._pid = None

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    def __repr__(self) -> str:
        from sqlalchemy.engine import make_url

        return f"Warehouse({make_url(self.url).render_as_string(hide_password=True)!r})"


def warehouse_dir() -> Path:
    return home() / "warehouse"


def resolve_url(url: str | None = None) -> str:
    """The warehouse URL to use, starting the embedded server if that is the one."""
    if url:
        return url
    env = os.environ.get("MARTECH_WAREHOUSE_URL")
    if env:
        check_url(env)
        return env
    return EmbeddedPostgres(warehouse_dir()).ensure_running()


def check_url(url: str, *, connect: bool = False, name: str = "MARTECH_WAREHOUSE_URL") -> None:
    """Raise WarehouseError with one sentence naming the URL's variable and what is wrong with it.

    Always checks the form (a ``postgresql://`` URL naming a database); ``connect`` also opens a
    connection (5 s timeout) and reports the server's answer.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise WarehouseError(f"{name} {url!r} is not a URL; expected "
                             "postgresql://user[:password]@host[:port]/database") from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise WarehouseError(f"{name} {shown} is not a PostgreSQL URL; it must start "
                             "with postgresql://")
    if not parsed.database:
        raise WarehouseError(f"{name} {shown} names no database; add /<database> at the end")
    if connect:
        import psycopg2

        try:
            psycopg2.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False),
                             connect_timeout=5).close()
        except psycopg2.Error as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise WarehouseError(f"{name} {shown} does not answer: {reason}") from None


SOCKET_PATH_MAX = 107  # bytes of a Unix socket address on Linux (sun_path without its NUL)


class EmbeddedPostgres:
    """A PostgreSQL cluster in a folder, run from the binaries shipped in the pgserver wheel."""

    def __init__(self, root: Path, database: str = DATABASE) -> None:
        self.root = root
        self.pgdata = root / "data"
        self.database = database

    # -- public ---------------------------------------------------------------------------------
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port()}/{self.database}"

    def is_running(self) -> bool:
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        # A server that is up can miss one look while tasks start side by side on a loaded machine
        # (pg_ctl status, or the 1 s connect): look three times before starting a second one, whose
        # start would find the port taken by this very server.
        for attempt in range(3):
            if self._pg_ctl_status() and self._answers():
                return True
            if attempt < 2:
                time.sleep(1)
        return False

    def ensure_running(self) -> str:
        """Initialise and start the cluster if needed; return its URL. Safe across processes."""
        with self._lock():
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb()
            if not self.is_running():
                self._start()
            self._ensure_database()
        return self.url()

    def stop(self) -> bool:
        """Stop the server; returns False when it was not running."""
        with self._lock():
            if not (self.pgdata / "PG_VERSION").exists() or not self._pg_ctl_status():
                return False
            self._pg_ctl(["-w", "-m", "fast", "stop"])
            return True

    # -- internals ------------------------------------------------------------------------------
    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def port(self) -> int:
        path = self.root / "port"
        if path.exists():
            return int(path.read_text().strip())
        self.root.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        path.write_text(f"{port}\n")
        return port

    def _system_user(self) -> str | None:
        # PostgreSQL refuses to run as root; pgserver provides an unprivileged user for that case.
        return "pgserver" if os.geteuid() == 0 else None

    def _prepare_permissions(self) -> None:
        user = self._system_user()
        if user is None:
            return
        import pwd

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver._commands import POSTGRES_BIN_PATH
            from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(user)
        ensure_prefix_permissions(self.root)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        pw = pwd.getpwnam(user)
        for path in (self.root, self.pgdata):
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _bin(self, name: str) -> str:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on import
                from pgserver._commands import POSTGRES_BIN_PATH
        except ImportError as exc:  # pragma: no cover - depends on the interpreter
            raise WarehouseError(
                "the embedded warehouse needs the 'pgserver' wheel, published for Python 3.10-3.12 only; "
                "on another Python set MARTECH_WAREHOUSE_URL to a PostgreSQL server"
            ) from exc
        return str(POSTGRES_BIN_PATH / name)

    def _run(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        user = self._system_user()
        try:
            return subprocess.run(args, check=True, capture_output=True, text=True, timeout=timeout,
                                  user=user, cwd="/" if user else None)
        except subprocess.CalledProcessError as exc:
            raise WarehouseError(
                f"{Path(args[0]).name} failed ({exc.returncode}): {exc.stderr.strip() or exc.stdout.strip()}"
                f"\nserver log: {self.pgdata / 'server.log'}"
            ) from exc

    def _initdb(self) -> None:
        self._prepare_permissions()
        self._run([self._bin("initdb"), "-D", str(self.pgdata), "--auth=trust", "--encoding=UTF8",
                   "--locale=C", "-U", "postgres"], timeout=120)

    def _pg_ctl(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self._run([self._bin("pg_ctl"), "-D", str(self.pgdata), *args], timeout=timeout)

    def _pg_ctl_status(self) -> bool:
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        user = self._system_user()
        res = subprocess.run([self._bin("pg_ctl"), "-D", str(self.pgdata), "status"], capture_output=True,
                             text=True, user=user, cwd="/" if user else None)
        return res.returncode == 0

    def socket_dir(self, port: int) -> Path:
        """Where the server puts its Unix socket (clients here use TCP; the server needs one place): the data
        folder, unless its path is too long for a socket address (107 bytes on Linux, e.g. deep test folders)
        or holds a space, then a private short folder in the system's temp folder named after it."""
        if len(f"{self.pgdata}/.s.PGSQL.{port}".encode()) <= SOCKET_PATH_MAX and " " not in str(self.pgdata):
            return self.pgdata
        short = Path(tempfile.gettempdir()) / f"martech-pg-{hashlib.sha1(str(self.pgdata).encode()).hexdigest()[:12]}"
        short.mkdir(mode=0o700, exist_ok=True)
        user = self._system_user()
        if user is not None:  # the server runs as that user (see _prepare_permissions)
            import pwd

            pw = pwd.getpwnam(user)
            os.chown(short, pw.pw_uid, pw.pw_gid)
        return short

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port()), timeout=1):
                return True
        except OSError:
            return False

    def _start(self) -> None:
        self._prepare_permissions()
        port = self.port()
        if not _port_free(port):
            raise WarehouseError(
                f"port {port} on 127.0.0.1 is taken by another program; delete {self.root / 'port'} "
                "to let martech choose a new one"
            )
        options = f"-h 127.0.0.1 -p {port} -k {self.socket_dir(port)} -c max_connections=100 " \
                  "-c synchronous_commit=off"
        self._pg_ctl(["-w", "-t", "60", "-o", options, "-l", str(self.pgdata / "server.log"), "start"],
                     timeout=90)
        deadline = time.monotonic() + 30
        while not self._answers():
            if time.monotonic() > deadline:
                raise WarehouseError(f"the embedded PostgreSQL did not answer on port {port}")
            time.sleep(0.2)

    def _ensure_database(self) -> None:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port(), user="postgres", dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("select 1 from pg_database where datname = %s", (self.database,))
                if cur.fetchone() is None:
                    cur.execute(f'create database "{self.database}"')
        finally:
            conn.close()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _free_port() -> int:
    for port in _PORT_RANGE:
        if _port_free(port):
            return port
    raise WarehouseError(f"no free port in {_PORT_RANGE.start}-{_PORT_RANGE.stop - 1} on 127.0.0.1")
