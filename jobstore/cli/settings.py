"""Settings: every CLI flag has a JOBSTORE_* twin. Built once, in the CLI, and passed down.

Each default is written once: in Settings, or (for what a component also needs on its own)
in that component's config, which Settings reads.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, replace
from typing import Any

from jobstore.api.limits import DEFAULT_MAX_BODY_BYTES
from jobstore.domain.durations import parse_duration
from jobstore.domain.errors import ConfigError
from jobstore.domain.inputs import (
    DEFAULT_MAX_LIST_ITEMS,
    DEFAULT_MAX_NESTING,
    DEFAULT_MAX_URL_BYTES,
    MAX_NESTING_CEILING,
    InputLimits,
)
from jobstore.domain.models import DEFAULT_MAX_ATTEMPTS, POOLER_MODES, JobState
from jobstore.executor.config import ExecutorConfig, PrunerConfig

# Processes of one node, at most: more than a few per core only adds contention.
MAX_PROCESSES = 64


@dataclass(frozen=True)
class Option:
    """A flag of the CLI; its default is the Settings field of the same name."""

    flag: str
    type: Callable[[str], Any]
    help: str
    commands: tuple[str, ...] = ("serve", "worker")
    secret: bool = False  # its value may hold a password: never echoed in an error

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def default(self) -> Any:
        field_ = Settings.__dataclass_fields__[self.dest]
        if field_.default_factory is not MISSING:
            return field_.default_factory()
        return field_.default

    @property
    def env(self) -> str:
        return "JOBSTORE_" + self.dest.upper()


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _auth_mode(value: str) -> str:
    lowered = value.strip().lower()
    if lowered not in ("off", "required"):
        raise argparse.ArgumentTypeError(f"expected off or required, got {value!r}")
    return lowered


def _pooler(value: str) -> str:
    lowered = value.strip().lower()
    if lowered not in POOLER_MODES:
        raise argparse.ArgumentTypeError(f"expected {', '.join(POOLER_MODES)}, got {value!r}")
    return lowered


def _json_object(value: str) -> dict[str, Any]:
    """A JSON object, its values kept as typed (numbers stay numbers)."""
    try:
        parsed = json.loads(value) if value.strip() else {}
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"expected a JSON object: {exc.msg}") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError('expected a JSON object, like {"command_timeout": 60}')
    return parsed


def _log_format(value: str) -> str:
    lowered = value.strip().lower()
    if lowered not in ("text", "json"):
        raise argparse.ArgumentTypeError(f"expected text or json, got {value!r}")
    return lowered


def retention(value: str) -> str:
    """An argparse type: a retention like 7d or 12h, or forever."""
    try:
        parse_duration(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return value.strip().lower() or "forever"


DB_COMMANDS = ("serve", "worker", "db")

OPTIONS: tuple[Option, ...] = (
    Option(
        "--database-url",
        str,
        "SQLAlchemy URL: sqlite:///path.db or postgresql://user@host/db",
        DB_COMMANDS,
    ),
    Option(
        "--database-pooler",
        _pooler,
        "none, session or transaction: the mode of the PgBouncer (or similar) between the nodes "
        "and PostgreSQL; transaction makes every statement safe on a shared server connection",
        DB_COMMANDS,
    ),
    Option(
        "--listen-database-url",
        str,
        "a direct connection to PostgreSQL for LISTEN, which a transaction pooler cannot carry "
        "(default: the database URL, or none in transaction mode)",
    ),
    Option(
        "--database-connect-args",
        _json_object,
        "a JSON object of connection arguments for the PostgreSQL driver (asyncpg), "
        'values typed as given, like {"command_timeout": 60, "ssl": "require"}',
        DB_COMMANDS,
        secret=True,
    ),
    Option("--host", str, "address to listen on", ("serve",)),
    Option("--port", int, "port to listen on (Kinetica's default)", ("serve",)),
    Option(
        "--public-url",
        str,
        "URL clients use to reach this node (default: from the request's Host header)",
        ("serve",),
    ),
    Option(
        "--node-id",
        str,
        "stable name of this node; a restarting node takes back the "
        "jobs it owned (default: HOSTNAME:PORT, or HOSTNAME:worker-PID)",
    ),
    Option(
        "--processes",
        int,
        "processes this node runs, each an API server (serve) and an executor with its own event "
        "loop and database connections, sharing the port; 2 uses both cores of a 2-core machine. "
        "--concurrency and --pool-size are per process; process K's node id is NODE-ID/K",
    ),
    Option("--concurrency", int, "jobs this node runs at once (per process)"),
    Option("--lease-seconds", float, "how long a claim lasts without a heartbeat"),
    Option(
        "--poll-seconds",
        float,
        "how often an idle executor looks for work (new jobs also wake it at once)",
    ),
    Option(
        "--shutdown-seconds",
        float,
        "on SIGTERM, how long running jobs may take to "
        "finish before they are given back to the queue",
    ),
    Option(
        "--cancel-grace-seconds",
        float,
        "how long a cancelled handler may take to stop before the job is recorded cancelled anyway",
    ),
    Option(
        "--max-backoff-seconds",
        float,
        "longest wait between two attempts of a job with retry_errors (backoff doubles up to it)",
    ),
    Option(
        "--max-attempts",
        int,
        "runs of a retryable job whose node keeps dying, at most "
        "(applies to jobs created through this node)",
        ("serve",),
    ),
    Option("--endpoints", _csv, "comma-separated Python modules with @endpoint functions"),
    Option(
        "--endpoints-file",
        str,
        "a TOML file of endpoints that call upstream HTTP services (docs/endpoints.md); header "
        "values may read ${env:NAME}",
    ),
    Option(
        "--kinetica-upstream",
        str,
        "URL of a Kinetica that runs every endpoint named in /create/job that this node does "
        "not define (credentials from JOBSTORE_KINETICA_UPSTREAM_USER and _PASSWORD, or _TOKEN)",
    ),
    Option("--migrate", _bool, "upgrade the database schema at start", ("serve", "worker")),
    Option(
        "--auth",
        _auth_mode,
        "off, or required: every request but the ping needs "
        "Basic credentials or a Bearer token (see 'jobstore users' and 'jobstore tokens')",
        ("serve",),
    ),
    Option("--insecure-bind", _bool, "allow a non-loopback --host with --auth off", ("serve",)),
    Option(
        "--ha-peers",
        _csv,
        "comma-separated URLs of the other nodes sharing this "
        "database, announced to Kinetica clients for failover",
        ("serve",),
    ),
    Option(
        "--cdm-cluster-id",
        str,
        "the CDM cluster id this node answers to in "
        "/v1.1/{project}/clusters/{cluster}/cdm/... (default: any)",
        ("serve",),
    ),
    Option("--max-body-bytes", int, "largest request body accepted", ("serve",)),
    Option(
        "--max-nesting",
        int,
        f"deepest nesting of a JSON value (a payload, a body, a template) accepted, "
        f"1 to {MAX_NESTING_CEILING}",
        ("serve",),
    ),
    Option(
        "--max-list-items",
        int,
        "most ids (or other items of work) one request may name, as in a bulk cancel",
        ("serve",),
    ),
    Option("--max-url-bytes", int, "longest path and query string accepted", ("serve",)),
    Option("--pool-size", int, "database connections per node", ("serve", "worker")),
    Option(
        "--wait-for-database",
        float,
        "at start, keep trying to reach the database for up to this many seconds (0: try once)",
        ("serve", "worker", "db upgrade"),
    ),
    Option(
        "--retain-done",
        retention,
        "how long finished 'done' jobs are kept, like 7d or 12h (default: forever)",
    ),
    Option("--retain-error", retention, "how long 'error' jobs are kept"),
    Option("--retain-cancelled", retention, "how long 'cancelled' jobs are kept"),
    Option("--prune-seconds", float, "how often the retention pass runs"),
    Option("--metrics", _bool, "serve Prometheus metrics at /metrics", ("serve",)),
    Option("--log-level", str, "debug, info, warning or error", DB_COMMANDS),
    Option(
        "--log-format",
        _log_format,
        "text, or json: one JSON object per log line (with an access log)",
        DB_COMMANDS,
    ),
)


def _default_of(config: Any, name: str) -> Any:
    """The default a component's config gives `name`: Settings repeats none of them."""
    return config.__dataclass_fields__[name].default


@dataclass(frozen=True)
class Settings:
    """Every setting of a node. Defaults that a component also has come from that component."""

    database_url: str = "sqlite:///jobstore.db"
    database_pooler: str = "none"
    listen_database_url: str = ""
    database_connect_args: Mapping[str, Any] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 9191
    public_url: str = ""
    node_id: str = ""
    processes: int = 1
    concurrency: int = _default_of(ExecutorConfig, "concurrency")
    lease_seconds: float = _default_of(ExecutorConfig, "lease_seconds")
    poll_seconds: float = _default_of(ExecutorConfig, "poll_seconds")
    shutdown_seconds: float = _default_of(ExecutorConfig, "shutdown_seconds")
    cancel_grace_seconds: float = _default_of(ExecutorConfig, "cancel_grace_seconds")
    max_backoff_seconds: float = _default_of(ExecutorConfig, "max_backoff_seconds")
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    endpoints: tuple[str, ...] = ()
    endpoints_file: str = ""
    kinetica_upstream: str = ""
    migrate: bool = True
    auth: str = "off"
    insecure_bind: bool = False
    ha_peers: tuple[str, ...] = ()
    cdm_cluster_id: str = ""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_nesting: int = DEFAULT_MAX_NESTING
    max_list_items: int = DEFAULT_MAX_LIST_ITEMS
    max_url_bytes: int = DEFAULT_MAX_URL_BYTES
    pool_size: int = 10
    wait_for_database: float = 0.0
    retain_done: str = "forever"
    retain_error: str = "forever"
    retain_cancelled: str = "forever"
    prune_seconds: float = _default_of(PrunerConfig, "interval_seconds")
    metrics: bool = True
    log_level: str = "info"
    log_format: str = "text"

    def database_options(self) -> dict[str, Any]:
        """How to reach the database, beyond its URL: keyword arguments of `Database`."""
        return {
            "pooler": self.database_pooler,
            "listen_url": self.listen_database_url or None,
            "connect_args": self.database_connect_args,
        }

    def pruner_config(self) -> PrunerConfig:
        """Retention per final state; states kept forever are left out."""
        periods = {
            JobState.DONE: parse_duration(self.retain_done),
            JobState.ERROR: parse_duration(self.retain_error),
            JobState.CANCELLED: parse_duration(self.retain_cancelled),
        }
        return PrunerConfig(
            retention={state: p for state, p in periods.items() if p is not None},
            interval_seconds=self.prune_seconds,
        )

    def executor_config(self, command: str) -> ExecutorConfig:
        """The executor of a `serve` or `worker` node; raises ConfigError on bad values."""
        return ExecutorConfig(
            node_id=self.effective_node_id(command),
            concurrency=self.concurrency,
            lease_seconds=self.lease_seconds,
            poll_seconds=self.poll_seconds,
            cancel_grace_seconds=self.cancel_grace_seconds,
            shutdown_seconds=self.shutdown_seconds,
            max_backoff_seconds=self.max_backoff_seconds,
        )

    def input_limits(self) -> InputLimits:
        """What one request may hold; raises ConfigError on bad values."""
        try:
            return InputLimits(
                max_nesting=self.max_nesting,
                max_list_items=self.max_list_items,
                max_url_bytes=self.max_url_bytes,
            )
        except ValueError as exc:
            raise ConfigError(str(exc).replace("_", " ")) from exc

    def for_process(self, index: int, command: str) -> Settings:
        """The settings of process `index` (1..processes) of a node: its own node id, stable
        across restarts of the node, so each process takes back the jobs it owned."""
        return replace(
            self, node_id=f"{self.effective_node_id(command)}/{index}", processes=1, migrate=False
        )

    def effective_node_id(self, command: str) -> str:
        if self.node_id:
            return self.node_id
        host = socket.gethostname()
        # A port is unique per host; a worker has none, so its process id keeps two workers
        # on one host apart (give --node-id to keep the name across restarts).
        return f"{host}:{self.port}" if command == "serve" else f"{host}:worker-{os.getpid()}"

    def validate(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be 1-65535, got {self.port}")
        if not (math.isfinite(self.wait_for_database) and self.wait_for_database >= 0):
            raise ConfigError("wait for database must be a finite number of seconds, 0 or more")
        if not 1 <= self.processes <= MAX_PROCESSES:
            raise ConfigError(f"processes must be 1-{MAX_PROCESSES}, got {self.processes}")
        if self.max_attempts < 1:
            raise ConfigError("max attempts must be at least 1")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"unknown log level {self.log_level!r}")
        self.pruner_config()  # raises on a bad retention or interval
        self.executor_config("serve")  # raises on a bad concurrency, lease or interval
        self.input_limits()
        for peer in self.ha_peers:
            if not peer.startswith(("http://", "https://")):
                raise ConfigError(f"HA peer {peer!r} must be an http:// or https:// URL")

    def check_bind(self) -> None:
        """Refuse to expose an unauthenticated service beyond this machine, unless forced."""
        if self.auth == "off" and not _is_loopback(self.host) and not self.insecure_bind:
            raise ConfigError(
                f"refusing to listen on {self.host} with --auth off: anyone who can reach it "
                "could run jobs. Use --auth required, or --insecure-bind true to force it"
            )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def add_options(parser: argparse.ArgumentParser, command: str, env: Mapping[str, str]) -> None:
    """Add the flags of `command`, each defaulting to its JOBSTORE_* variable if set."""
    for opt in OPTIONS:
        if command not in opt.commands:
            continue
        default = opt.default
        if opt.env in env:
            try:
                default = opt.type(env[opt.env])
            except (ValueError, argparse.ArgumentTypeError) as exc:
                shown = "(value hidden)" if opt.secret else repr(env[opt.env])
                raise ConfigError(f"{opt.env}={shown}: {exc}") from exc
        parser.add_argument(
            opt.flag,
            type=opt.type,
            default=default,
            help=f"{opt.help} [{opt.env}; default {opt.default!r}]",
        )


def settings_from(namespace: argparse.Namespace) -> Settings:
    known = {f for f in Settings.__dataclass_fields__}
    values = {k: v for k, v in vars(namespace).items() if k in known}
    settings = Settings(**values)
    settings.validate()
    return settings


def environment() -> Mapping[str, str]:
    return os.environ


__all__: Sequence[str] = ["OPTIONS", "Settings", "add_options", "settings_from"]
