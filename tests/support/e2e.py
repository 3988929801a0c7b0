"""Helpers for the end-to-end tests: real `jobstore serve` processes, HTTP and SQL helpers.

A `Server` runs `python -m jobstore serve` on a free port with the repository on its PYTHONPATH
(so `--endpoints tests.support.e2e_endpoints` imports), its stderr in a file, and is always
reaped: `kill()` sends SIGKILL and waits, `terminate()` sends SIGTERM and waits for the exit
code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
from sqlalchemy.engine import make_url

REPO_ROOT = Path(__file__).resolve().parents[2]
E2E_ENDPOINTS = "tests.support.e2e_endpoints"

T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port() -> int:
    """A port nothing listens on (free when asked; nothing here binds it again)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env() -> dict[str, str]:
    """The environment for a child: no JOBSTORE_* settings leak in; `tests` is importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBSTORE_")}
    paths = [str(REPO_ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(
    args: Sequence[str], cwd: Path, timeout: float = 60, *, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run `python -m jobstore ARGS` to completion, `stdin` fed in, and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "jobstore", *args],
        cwd=cwd,
        env=clean_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_cli_ok(
    args: Sequence[str], cwd: Path, timeout: float = 60, *, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """`run_cli`, failing the test unless the command exits 0."""
    done = run_cli(args, cwd, timeout, stdin=stdin)
    assert done.returncode == 0, (
        f"jobstore {' '.join(args)} exited {done.returncode}\n"
        f"stdout: {done.stdout}\nstderr: {done.stderr}"
    )
    return done


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float = 15.0,
    interval: float = 0.05,
    logs: Callable[[], str] | None = None,
) -> T:
    """Call `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            detail = f"\n--- server logs ---\n{logs()}" if logs is not None else ""
            raise AssertionError(
                f"timed out after {timeout:.1f}s waiting for {what} (last: {last!r}){detail}"
            )
        time.sleep(interval)


class Server:
    """One real `jobstore serve` process."""

    def __init__(
        self,
        database_url: str,
        workdir: Path,
        *,
        node_id: str = "node-1",
        port: int | None = None,
        extra_args: Sequence[str] = (),
        lease_seconds: float = 2.0,
        poll_seconds: float = 0.2,
        endpoints: str = E2E_ENDPOINTS,
        log_level: str = "warning",
        env: dict[str, str] | None = None,
    ) -> None:
        """`env`: the process's environment (default `clean_env()`), e.g. a skewed clock."""
        self.database_url = database_url
        self.env = env
        self.workdir = workdir
        self.node_id = node_id
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.endpoints = endpoints
        self.log_level = log_level
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_path = workdir / f"server-{node_id}.log"
        self._client: httpx.Client | None = None

    # -- process ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "jobstore",
            "serve",
            "--database-url",
            self.database_url,
            "--port",
            str(self.port),
            "--node-id",
            self.node_id,
            "--lease-seconds",
            str(self.lease_seconds),
            "--poll-seconds",
            str(self.poll_seconds),
            "--endpoints",
            self.endpoints,
            "--log-level",
            self.log_level,
            *self.extra_args,
        ]

    def start(self, *, extra_args: Sequence[str] | None = None, timeout: float = 30.0) -> Server:
        """Start (or restart) the process and wait until it answers /healthz."""
        assert self.proc is None or self.proc.poll() is not None, "server is already running"
        if extra_args is not None:
            self.extra_args = list(extra_args)
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"=== start #{self.starts}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.workdir,
                env=self.env if self.env is not None else clean_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        wait_for(
            f"{self.node_id} to answer on port {self.port}",
            self._ready,
            timeout=timeout,
            interval=0.05,
            logs=self.logs,
        )
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"server {self.node_id} exited with {self.proc.returncode} while starting\n"
                f"--- server logs ---\n{self.logs()}"
            )
        try:
            # /healthz is public, also under --auth required.
            response = httpx.get(f"{self.url}/healthz", timeout=1.0)
        except httpx.TransportError:
            return False
        return response.status_code == 200

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9, then reap the process."""
        self.close_client()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (the soft stop); returns the exit code."""
        self.close_client()
        assert self.proc is not None and self.proc.poll() is None, "server is not running"
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"server {self.node_id} did not exit within {timeout}s of SIGTERM\n"
                f"--- server logs ---\n{self.logs()}"
            ) from None

    def cleanup(self) -> None:
        """Kill whatever is still running; safe to call any number of times."""
        with contextlib.suppress(Exception):
            self.kill()
        self.close_client()

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log file)"

    # -- HTTP -------------------------------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(base_url=self.url, timeout=10.0)
        return self._client

    def close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.client.post(path, json=body)

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a Kinetica request that must succeed; returns the parsed data_str."""
        response = self.post(path, body)
        envelope = response.json()
        assert response.status_code == 200 and envelope["status"] == "OK", (
            f"{path} failed: HTTP {response.status_code} {envelope}\n"
            f"--- server logs ---\n{self.logs()}"
        )
        data: dict[str, Any] = json.loads(envelope["data_str"])
        return data

    def create_job(
        self,
        endpoint: str,
        request: Any,
        *,
        tag: str | None = None,
        options: dict[str, str] | None = None,
    ) -> int:
        options = {**({"job_tag": tag} if tag else {}), **(options or {})}
        data = self.call(
            "/create/job",
            {
                "endpoint": endpoint,
                "request_encoding": "json",
                "data": "",
                "data_str": json.dumps(request),
                "options": options,
            },
        )
        return int(data["job_id"])

    def get_job(self, job_id: int = 0, *, tag: str | None = None) -> dict[str, Any]:
        options = {"job_tag": tag} if tag else {}
        return self.call("/get/job", {"job_id": job_id, "options": options})

    def wait_job(self, job_id: int, *, timeout: float = 20.0, states: Sequence[str] = ()) -> dict:
        """Poll /get/job until the job leaves RUNNING (or reaches one of `states`)."""
        wanted = tuple(states) or ("DONE", "ERROR", "CANCELLED")

        def probe() -> dict[str, Any] | None:
            job = self.get_job(job_id)
            return job if job["job_status"] in wanted else None

        return wait_for(f"job {job_id} to reach {wanted}", probe, timeout=timeout, logs=self.logs)


MakeServer = Callable[..., Server]


@contextlib.contextmanager
def server_factory(database_url: str, workdir: Path) -> Iterator[MakeServer]:
    """A factory of (not yet started) servers on one database; when the block ends, every one
    is killed and its logs printed (pytest shows them when the test failed).

    A fixture built on this should depend on `database_url`, so its servers die before their
    database is dropped.
    """
    made: list[Server] = []

    def make(cls: type[Server] = Server, **kwargs: Any) -> Server:
        server = cls(database_url, workdir, **kwargs)
        made.append(server)
        return server

    try:
        yield make
    finally:
        for server in made:
            server.cleanup()
        for server in made:
            print(f"\n===== logs of {server.node_id} (port {server.port}) =====\n{server.logs()}")


# -- reading the jobs table directly ------------------------------------------------------------


async def _pg_fetch(url: str, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


def query(url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Run one SELECT against the test database; use $1, $2... for parameters."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        lite_sql = sql
        for i in range(len(args), 0, -1):
            lite_sql = lite_sql.replace(f"${i}", f"?{i}")
        with contextlib.closing(sqlite3.connect(parsed.database, timeout=10)) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(lite_sql, args).fetchall()]
    return asyncio.run(_pg_fetch(url, sql, args))


def job_rows(url: str) -> list[dict[str, Any]]:
    """Every job row that matters to these tests, by id."""
    rows = query(
        url,
        "SELECT job_id, job_tag, endpoint, status, attempt, owner, progress, response_text, "
        "status_map FROM jobs ORDER BY job_id",
    )
    for row in rows:
        if isinstance(row["status_map"], str):
            row["status_map"] = json.loads(row["status_map"])
    return rows


def job_row(url: str, job_id: int) -> dict[str, Any]:
    rows = [r for r in job_rows(url) if r["job_id"] == job_id]
    assert len(rows) == 1, f"expected exactly one row for job {job_id}, found {rows}"
    return rows[0]
