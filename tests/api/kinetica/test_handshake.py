"""What the official client asks before any job: system status, properties, the ping."""

from __future__ import annotations

import json

import pytest

from jobstore.api.kinetica import KineticaConfig
from jobstore.store import Database
from tests.support.kinetica import (
    Env,
    kinetica_env,
)

# -- handshake -------------------------------------------------------------------------------

HANDSHAKE_BODIES = {"json": b'{"options": {}}', "binary": b"\x00", "snappy": b"\x01\x00\x00"}


@pytest.mark.parametrize("prefix", ["", "/gpudb-0"])
async def test_show_system_status(env: Env, wire: str, prefix: str) -> None:
    reply = await env.api.using(wire).post(
        prefix + "/show/system/status", HANDSHAKE_BODIES[wire], rsp="/show/system/status"
    )
    assert reply.http_status == 200 and reply.record is not None
    status_map = reply.record["status_map"]
    assert isinstance(status_map["system"], str)
    assert json.loads(status_map["system"])["status"] == "running"
    if "ha_status" in status_map:
        assert json.loads(status_map["ha_status"])["drained"] in ("drained", "not_drained")


@pytest.mark.parametrize("prefix", ["", "/gpudb-0"])
async def test_show_system_properties(env: Env, wire: str, prefix: str) -> None:
    reply = await env.api.using(wire).post(
        prefix + "/show/system/properties", HANDSHAKE_BODIES[wire], rsp="/show/system/properties"
    )
    assert reply.http_status == 200 and reply.record is not None
    props = reply.record["property_map"]
    parts = props["version.gpudb_core_version"].split(".")
    assert len(parts) >= 4 and all(p.isdigit() for p in parts[:4]), props
    assert parts[:2] == ["7", "2"]  # no version-mismatch warning in the client
    assert props["conf.number_of_hosts"] == "1"
    assert props["conf.host0_public_urls"] == "http://testserver"  # from the Host header
    assert "conf.worker_http_server_urls" not in props
    if props.get("conf.enable_ha", "").upper() == "TRUE":
        assert props.get("conf.ha_ring_head_nodes_full")


async def test_public_url_config_wins(db: Database) -> None:
    async for e in kinetica_env(db, KineticaConfig(public_url="http://jobs.example:9191/")):
        props = (await e.api.ok("/show/system/properties", {"options": {}}))["property_map"]
        assert props["conf.host0_public_urls"] == "http://jobs.example:9191"


async def test_ping(env: Env) -> None:
    response = await env.client.get("/", headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.text == "Kinetica is running!"
