"""The facade guard (jobstore/api/errors.py): every facade answers a failure in its own dialect,
and all of them log it the same way.

The app is the real one over a real database; a failure is provoked by making one method of
the core raise, as a bug or a database outage would.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from jobstore.api.app import create_app
from jobstore.api.cdm import CdmConfig
from jobstore.api.cdm.definitions import CdmService
from jobstore.api.kinetica import KineticaConfig
from jobstore.api.kinetica.schemas import ENDPOINTS
from jobstore.api.rest import RestConfig
from jobstore.api.ui import UiConfig
from jobstore.api.ui.routes import HTML_HEADERS
from jobstore.codecs.envelope import GPUDB_RESPONSE
from jobstore.core.accounts import Authenticator
from jobstore.core.jobs import JobService
from jobstore.domain.errors import StoreUnavailable
from jobstore.endpoints.registry import default_registry
from jobstore.store import Database

CDM = "/v1.1/p1/clusters/c1/cdm"
SHOW_JOBS = "/admin/show/jobs"
GUARD_LOGGER = "jobstore.api.errors"


@dataclass
class Env:
    client: httpx.AsyncClient
    service: JobService
    cdm: CdmService
    token: str  # alice's, for project p1

    def fail_with(self, monkeypatch: pytest.MonkeyPatch, exc: Exception) -> None:
        """Every core call the tests below make raises `exc` from now on."""

        def boom(*args: Any, **kwargs: Any) -> Any:
            raise exc

        for name in ("status_counts", "search_jobs", "list_jobs", "get_job"):
            monkeypatch.setattr(self.service, name, boom)
        monkeypatch.setattr(self.cdm, "check_cluster", boom)


@pytest.fixture
async def env(db: Database) -> AsyncIterator[Env]:
    """All four facades, authentication off except CDM's (which always has it)."""
    service = JobService(db, default_registry())
    accounts = Authenticator(db)
    await accounts.add_user("alice", "pw-alice")
    _, token = await accounts.create_token("alice", project="p1")
    cdm = CdmService(service)
    app = create_app(
        service,
        kinetica=KineticaConfig(),
        cdm=(cdm, CdmConfig(authenticator=accounts)),
        rest=RestConfig(),
        ui=UiConfig(),
    )
    transport = httpx.ASGITransport(app=app)  # raises what the app lets escape
    async with httpx.AsyncClient(transport=transport, base_url="http://guard.test") as client:
        yield Env(client, service, cdm, token)


def _kinetica_binary(path: str, record: dict[str, Any]) -> dict[str, Any]:
    return {
        "content": ENDPOINTS[path][0].encode(record),
        "headers": {"Content-Type": "application/octet-stream"},
    }


# One request per facade that reaches the core: (method, path, httpx keyword arguments).
def _requests(env: Env) -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {
        "kinetica-json": ("POST", SHOW_JOBS, {"json": {"options": {}}}),
        "kinetica-binary": ("POST", SHOW_JOBS, _kinetica_binary(SHOW_JOBS, {"options": {}})),
        "rest": ("GET", "/api/v1/stats", {}),
        "cdm": ("GET", f"{CDM}/job/all", {"headers": {"X-Auth-Token": env.token}}),
        "ui": ("GET", "/ui", {}),
        "ui-job": ("GET", "/ui/jobs/1", {}),
        "ui-live": ("GET", "/ui/live", {}),
    }


FACADES = ["kinetica-json", "kinetica-binary", "rest", "cdm", "ui", "ui-job", "ui-live"]


def _kinetica_error(response: httpx.Response) -> str:
    """The message of an ERROR envelope, in the wire encoding the response is in."""
    if response.headers["content-type"] == "application/octet-stream":
        envelope = GPUDB_RESPONSE.decode(response.content)
    else:
        assert response.headers["content-type"] == "application/json"
        envelope = response.json()
    assert envelope["status"] == "ERROR" and envelope["data_type"] == "none", envelope
    message: str = envelope["message"]
    return message


def _check_html_page(response: httpx.Response, status: int) -> str:
    """The dashboard's error page: HTML, the given status, every header its pages carry."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    for name, value in HTML_HEADERS.items():
        assert response.headers.get(name) == value, name
    assert f'data-http-status="{status}"' in response.text
    return response.text


def _kinetica_internal(response: httpx.Response) -> None:
    # Deliberately 400, never 500: the official client fails over (or loops) on a 5xx.
    assert response.status_code == 400
    assert _kinetica_error(response) == f"internal error while serving {SHOW_JOBS}"


def _rest_internal(response: httpx.Response) -> None:
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "/api/v1/problems/internal-error",
        "title": "Internal error",
        "status": 500,
        "detail": "internal error while serving GET /api/v1/stats",
        "instance": "/api/v1/stats",
    }


def _cdm_internal(response: httpx.Response) -> None:
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    message = "System error."
    assert response.json() == {
        "errCode": "Cdm.0000",
        "externalMessage": message,
        "code": "Cdm.0000",
        "message": message,
    }


def _ui_internal(response: httpx.Response) -> None:
    html = _check_html_page(response, 500)
    assert "Internal error" in html


INTERNAL_CHECKS: dict[str, Callable[[httpx.Response], None]] = {
    "kinetica-json": _kinetica_internal,
    "kinetica-binary": _kinetica_internal,
    "rest": _rest_internal,
    "cdm": _cdm_internal,
    "ui": _ui_internal,
    "ui-job": _ui_internal,
    "ui-live": _ui_internal,
}


def _guard_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- an unexpected exception -------------------------------------------------------------------


async def test_the_dashboard_answers_a_bug_with_its_error_page_and_headers(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not Starlette's plain-text 500: the page, and the headers every dashboard page has."""
    normal = await env.client.get("/ui")
    assert normal.status_code == 200
    page_headers = {name: normal.headers[name] for name in HTML_HEADERS}

    env.fail_with(monkeypatch, RuntimeError("secret detail of a bug"))
    for path in ("/ui", "/ui/live", "/ui/jobs/1", "/ui/jobs/1/live", "/ui?q=7"):
        response = await env.client.get(path)
        html = _check_html_page(response, 500)
        assert {name: response.headers[name] for name in HTML_HEADERS} == page_headers
        assert "secret detail" not in html and "RuntimeError" not in html
        assert 'href="/ui"' in html  # the way back, as on every error page


@pytest.mark.parametrize("facade", FACADES)
async def test_each_facade_answers_a_bug_in_its_dialect_and_logs_it_once(
    env: Env, facade: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    method, path, kwargs = _requests(env)[facade]
    env.fail_with(monkeypatch, RuntimeError("secret detail of a bug"))
    caplog.set_level(logging.INFO)

    response = await env.client.request(method, path, **kwargs)

    INTERNAL_CHECKS[facade](response)
    assert b"secret detail" not in response.content
    [record] = _guard_records(caplog)
    assert record.name == GUARD_LOGGER and record.levelno == logging.ERROR
    assert record.getMessage() == f"internal error serving {method} {path}"
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


# -- the database out of reach -----------------------------------------------------------------


@pytest.mark.parametrize("facade", FACADES)
async def test_each_facade_answers_an_outage_with_503_and_logs_a_warning(
    env: Env, facade: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    method, path, kwargs = _requests(env)[facade]
    env.fail_with(monkeypatch, StoreUnavailable("database unreachable"))
    caplog.set_level(logging.INFO)

    response = await env.client.request(method, path, **kwargs)

    assert response.status_code == 503
    if facade.startswith("kinetica"):
        assert _kinetica_error(response) == "database unreachable"
    elif facade == "rest":
        assert response.headers["retry-after"] == "5"
        assert response.json()["type"] == "/api/v1/problems/service-unavailable"
    elif facade == "cdm":
        assert response.json()["errCode"] == "Cdm.0000"
        assert response.json()["message"] == "System error: database unreachable"
    else:
        assert "database unreachable" in _check_html_page(response, 503)
    [record] = _guard_records(caplog)
    assert record.name == GUARD_LOGGER and record.levelno == logging.WARNING
    assert record.getMessage() == f"{method} {path}: database unreachable"
    assert record.exc_info is None  # an outage is expected: no traceback


# -- client errors are answered, not logged ----------------------------------------------------


async def test_client_errors_keep_their_dialect_and_are_not_logged(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    kinetica = await env.client.post("/no/such/endpoint", json={})
    assert kinetica.status_code == 400
    assert _kinetica_error(kinetica) == "unknown Kinetica endpoint '/no/such/endpoint'"

    rest = await env.client.get("/api/v1/jobs/12345")
    assert rest.status_code == 404 and rest.json()["type"] == "/api/v1/problems/job-not-found"
    assert rest.json()["job_id"] == 12345

    auth = {"headers": {"X-Auth-Token": env.token}}
    cdm = await env.client.get(f"{CDM}/job/ghost", **auth)
    assert (cdm.status_code, cdm.json()["errCode"]) == (400, "Cdm.0100")
    paging = await env.client.get(f"{CDM}/job/all", params={"page_size": "x"}, **auth)
    assert (paging.status_code, paging.json()["errCode"]) == (400, "Cdm.0009")

    assert "job_id 12345" in _check_html_page(await env.client.get("/ui/jobs/12345"), 404)
    assert "unknown status" in _check_html_page(await env.client.get("/ui?status=zzz"), 400)
    assert _guard_records(caplog) == []


# -- CDM's credentials, through the shared authenticate() --------------------------------------


async def test_cdm_reads_its_token_from_x_auth_token(env: Env) -> None:
    def gateway(response: httpx.Response, status: int, code: str) -> str:
        assert response.status_code == status
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert set(body) == {"error_code", "error_msg", "request_id"}
        assert body["error_code"] == code and len(body["request_id"]) == 32
        message: str = body["error_msg"]
        return message

    prefix = "Incorrect IAM authentication information: "
    missing = prefix + "x-auth-token not found"
    for headers in ({}, {"X-Auth-Token": ""}, {"X-Auth-Token": "   "}):
        response = await env.client.get(f"{CDM}/job/all", headers=headers)
        assert gateway(response, 401, "APIGW.0301") == missing
    # A Bearer header is not CDM's: its token goes in X-Auth-Token.
    bearer = {"Authorization": f"Bearer {env.token}"}
    response = await env.client.get(f"{CDM}/job/all", headers=bearer)
    assert gateway(response, 401, "APIGW.0301") == missing
    for token in ("wrong", f"{env.token}x"):
        response = await env.client.get(f"{CDM}/job/all", headers={"X-Auth-Token": token})
        assert gateway(response, 401, "APIGW.0301") == prefix + "decrypt token fail"

    own = {"X-Auth-Token": f"  {env.token} "}  # surrounding blanks are not part of it
    response = await env.client.get(f"{CDM}/job/all", headers=own)
    assert response.status_code == 200, response.text
    assert json.loads(response.content) == {"total": 0, "jobs": [], "page_no": 1, "page_size": 10}
    other = await env.client.get(
        "/v1.1/p2/clusters/c1/cdm/job/all", headers={"X-Auth-Token": env.token}
    )
    assert gateway(other, 403, "APIGW.0302") == (
        "The IAM user is not authorized to access project p2"
    )
