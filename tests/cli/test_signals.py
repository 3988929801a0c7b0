"""Nodes say when a signal stops them, and a worker's first line names its endpoints."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.support.e2e import E2E_ENDPOINTS, Server, clean_env, wait_for


def test_serve_logs_the_sigterm_that_stops_it(tmp_path: Path) -> None:
    server = Server(f"sqlite:///{tmp_path / 'jobs.db'}", tmp_path, log_level="info")
    try:
        server.start()
        assert server.terminate() == 0
        assert "SIGTERM received: stopping" in server.logs()
    finally:
        server.cleanup()


def test_worker_names_its_endpoints_and_logs_sigterm(tmp_path: Path) -> None:
    log_path = tmp_path / "worker.log"
    argv = [sys.executable, "-m", "jobstore", "worker", "--node-id", "w1"]
    argv += ["--database-url", f"sqlite:///{tmp_path / 'jobs.db'}"]
    argv += ["--endpoints", E2E_ENDPOINTS, "--log-level", "info"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=clean_env(), stderr=log)
    try:
        wait_for("the worker's start line", lambda: "worker, node w1" in log_path.read_text())
        start = next(line for line in log_path.read_text().splitlines() if "worker, node" in line)
        assert start.endswith(
            "endpoints /e2e/add, /echo, /fail, /limited, /once, /record, /sleep, /slow_first"
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "SIGTERM received: stopping" in log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
