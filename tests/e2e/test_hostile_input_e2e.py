"""Hostile input against a real `jobstore serve` (uvicorn, its HTTP parser and the boundary), on
SQLite and PostgreSQL, with `--auth required`: every answer is the facade's own 4xx, the
connection is not reset, and the node's log holds no traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.e2e import MakeServer, run_cli_ok, server_factory

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

NUL_USER = {"Authorization": "Basic YQBiOnB3"}  # "a\x00b:pw"


@pytest.fixture
def servers(database_url: str, tmp_path: Path) -> Iterator[MakeServer]:
    with server_factory(database_url, tmp_path) as make:
        yield make


def test_hostile_requests_get_their_facades_4xx_from_a_real_node(
    database_url: str, servers: MakeServer, tmp_path: Path
) -> None:
    users_add = ["users", "add", "alice", "--password-stdin", "--database-url", database_url]
    run_cli_ok(users_add, tmp_path, stdin="pw-alice\n")
    server = servers(extra_args=["--auth", "required"]).start()
    alice = {"Authorization": "Basic YWxpY2U6cHctYWxpY2U="}  # alice:pw-alice
    client = server.client

    cases = [
        ("GET", "/ui?endpoint=%00", alice, 400, "text/html"),
        ("GET", "/ui/live?endpoint=a%00b", alice, 400, "text/html"),
        ("GET", "/api/v1/jobs/" + "9" * 4400, alice, 400, "application/problem+json"),
        ("GET", "/ui/jobs/" + "9" * 4400, alice, 400, "text/html"),
        ("GET", "/api/v1/jobs", NUL_USER, 401, "application/problem+json"),
        ("GET", "/ui", NUL_USER, 401, "text/html"),
        ("POST", "/create/job", NUL_USER, 401, "application/json"),
    ]
    for method, path, headers, status, media in cases:
        response = client.request(method, path, headers=headers)
        assert response.status_code == status, (path, response.status_code, response.text)
        assert response.headers["content-type"].startswith(media), (path, response.headers)

    deep = '{"endpoint": "/echo", "payload": ' + "[" * 970 + "]" * 970 + "}"
    headers = {**alice, "content-type": "application/json"}
    response = client.post("/api/v1/jobs", content=deep, headers=headers)
    assert response.status_code == 400, response.text
    assert "a payload nests at most 64 levels" in response.text

    assert client.get("/healthz").status_code == 200  # still serving, on the same client
    logs = server.logs()
    assert "Traceback" not in logs and "internal error" not in logs, logs
