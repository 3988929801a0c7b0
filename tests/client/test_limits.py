"""The client's limit methods against a real node, sync and async (see conftest.py).

The node runs its jobs: /sleep jobs of one key start as its limit lets them, so the counts
the client reads are the node's own.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jobstore.client import BadRequest, Forbidden, Limit, NotFound, Unauthorized
from tests.client.nodes import Connect, StartNode
from tests.support.e2e import run_cli_ok, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

ODD_KEYS = ["a/b", "50% off", "tenant:42", "a/../b", "x?y#z", "é"]


def counts(client: Any, key: str) -> tuple[int, int]:
    limit = client.get_limit(key)
    return limit.running, limit.queued


def test_set_read_list_and_remove(client: Any) -> None:
    assert client.list_limits() == []
    made = client.set_limit("acme", 1)
    assert isinstance(made, Limit)
    assert (made.key, made.max_running, made.source, made.running, made.queued) == (
        "acme",
        1,
        "named",
        0,
        0,
    )
    assert made.updated_by is None  # authentication is off
    assert made.updated_at is not None
    assert abs(made.updated_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert made.raw["links"] == {"self": "/api/v1/limits/acme"}
    assert client.get_limit("acme") == made
    assert client.list_limits() == [made]

    # Three jobs of the key: one runs, two wait their turn.
    for _ in range(3):
        client.create("/sleep", {"seconds": 30}, concurrency_key="acme")
    assert wait_for("one acme job running", lambda: counts(client, "acme") == (1, 2))
    assert [limit.key for limit in client.list_limits()] == ["acme"]

    # Removed: the key has no limit left, and the other two start.
    assert client.delete_limit("acme") is None
    assert wait_for("every acme job running", lambda: counts(client, "acme") == (3, 0))
    free = client.get_limit("acme")
    assert (free.max_running, free.source, free.updated_at) == (None, None, None)
    with pytest.raises(NotFound) as missing:
        client.delete_limit("acme")
    assert missing.value.slug == "limit-not-found" and missing.value.problem["key"] == "acme"


def test_keys_with_any_printable_characters(client: Any) -> None:
    for n, key in enumerate(ODD_KEYS, start=1):
        assert client.set_limit(key, n).key == key
        assert client.get_limit(key).max_running == n
    assert [limit.key for limit in client.list_limits()] == sorted(ODD_KEYS)
    for key in ODD_KEYS:
        client.delete_limit(key)
    assert client.list_limits() == []


def test_refusals(client: Any) -> None:
    with pytest.raises(NotFound) as missing:
        client.get_limit("nope")
    assert missing.value.slug == "limit-not-found"
    with pytest.raises(NotFound):
        client.delete_limit("nope")
    for key, max_running, field in [
        ("acme", -1, "max_running"),
        ("acme", 1_000_001, "max_running"),
        ("..", 1, "key"),
        (".", 1, "key"),
        ("x" * 129, 1, "key"),
        ("", 1, "key"),
    ]:
        with pytest.raises(BadRequest) as bad:
            client.set_limit(key, max_running)
        assert [e["field"] for e in bad.value.problem["errors"]] == [field], key
    assert client.list_limits() == []


def test_only_admins_set_and_remove(
    start_node: StartNode, connect: Connect, tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'auth.db'}"
    db = ("--database-url", database_url)
    run_cli_ok(["db", "upgrade", *db], tmp_path)
    run_cli_ok(["users", "add", "alice", "--password-stdin", *db], tmp_path, stdin="pw-a\n")
    admin = ["users", "add", "ops", "--admin", "--password-stdin", *db]
    run_cli_ok(admin, tmp_path, stdin="pw-ops\n")
    node = start_node("--auth", "required", database_url=database_url)

    with pytest.raises(Unauthorized):
        connect(node.url).list_limits()
    alice = connect(node.url, user="alice", password="pw-a")
    ops = connect(node.url, user="ops", password="pw-ops")
    with pytest.raises(Forbidden) as refused:
        alice.set_limit("acme", 2)
    assert refused.value.slug == "forbidden"
    assert ops.set_limit("acme", 2).updated_by == "ops"
    seen = alice.get_limit("acme")  # everyone reads
    assert (seen.max_running, seen.updated_by) == (2, "ops")
    with pytest.raises(Forbidden):
        alice.delete_limit("acme")
    ops.delete_limit("acme")
    assert alice.list_limits() == []
