"""`--processes N`: one node as N processes, so a node uses more than one core.

Python runs one thread of bytecode at a time, so a node in one process is bound to one core.
With --processes N the command's process becomes a supervisor: it checks the port is free,
migrates the database once, then starts N processes of its own (spawned, not forked: each a
fresh interpreter with its own event loop). Each process is a whole node of its own: an API
server (serve) bound to the same port with SO_REUSEPORT, so the kernel spreads connections
over them; an executor with its own database connections and group commit; node id
NODE-ID/K, so after a restart each process takes back the jobs it owned.

The supervisor forwards SIGTERM and SIGINT (each process then stops softly), starts a process
again when it dies after it was up (a crash, a kill -9), and stops them all when one fails
before it was up (its error, a database out of reach or a bad endpoint module, is the node's).
A process whose supervisor dies is sent SIGTERM (Linux), so no process outlives its node.
Metrics add up: the processes count into one directory of prometheus_client's multiprocess
files, and /metrics of any process sums them.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

from jobstore.cli.exits import exit_status
from jobstore.cli.logs import setup_logging
from jobstore.cli.settings import Settings
from jobstore.domain.errors import JobstoreError
from jobstore.metrics import MULTIPROCESS_DIR_ENV

log = logging.getLogger("jobstore")

# cli/serve.py's run_node: (command, settings, *, reuse_port, on_ready) -> exit status.
RunNode = Callable[..., int]

# A process that keeps dying is started again at most this often.
RESTART_SECONDS = 1.0


@dataclass
class _Slot:
    index: int
    settings: Settings
    process: BaseProcess | None = None
    ready: Any = None  # a pipe's reading end; the process writes to it once it serves
    started: float = 0.0
    told_to_stop: bool = False


def supervise(
    command: str, settings: Settings, *, prepare: Callable[[Settings], None], run: RunNode
) -> int:
    """Run `command` ("serve" or "worker") as settings.processes processes until a signal;
    `prepare` runs first, once (bind check, migration); each process calls `run` (a function
    of a module, so that it can be named to a spawned process). The exit status is the worst
    of the processes'."""
    prepare(settings)
    metrics_dir = tempfile.mkdtemp(prefix="jobstore-metrics-") if settings.metrics else None
    stopping: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        if not stopping:
            log.info("%s received: stopping %d processes", signal.Signals(signum).name, len(slots))
        stopping.append(signum)
        _tell_to_stop(slots)

    slots = [
        _Slot(index, settings.for_process(index, command))
        for index in range(1, settings.processes + 1)
    ]
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    status = 0
    try:
        for slot in slots:
            _start(slot, command, metrics_dir, run)
        while any(s.process is not None for s in slots):
            if stopping:  # a process started while the signal was handled must hear it too
                _tell_to_stop(slots)
            live = {s.process.sentinel: s for s in slots if s.process is not None}
            for sentinel in wait(list(live), timeout=1.0):
                slot = live[sentinel]  # type: ignore[index]
                assert slot.process is not None
                slot.process.join()  # reaps it: its sentinel says it ended
                code = _exit_status(slot.process.exitcode)
                was_ready = _was_ready(slot)
                slot.process.close()
                slot.process = None
                if stopping:
                    status = max(status, code)
                elif not was_ready:
                    log.error(
                        "process %d (node %s) failed at start (exit status %d): stopping the node",
                        slot.index,
                        slot.settings.node_id,
                        code,
                    )
                    status = max(status, code, 1)
                    on_signal(signal.SIGTERM, None)
                else:
                    log.warning(
                        "process %d (node %s) exited with status %d; starting it again",
                        slot.index,
                        slot.settings.node_id,
                        code,
                    )
                    time.sleep(max(0.0, slot.started + RESTART_SECONDS - time.monotonic()))
                    _start(slot, command, metrics_dir, run)
        return status
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _tell_to_stop(slots: list[_Slot]) -> None:
    """SIGTERM, once, to every process that is running (each then stops softly)."""
    for slot in slots:
        if slot.process is None or slot.process.pid is None or slot.told_to_stop:
            continue
        slot.told_to_stop = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(slot.process.pid, signal.SIGTERM)


def _was_ready(slot: _Slot) -> bool:
    """Whether the process, now ended, had said it served (what it wrote outlives it)."""
    try:
        return bool(slot.ready.poll())
    finally:
        slot.ready.close()


def _exit_status(exitcode: int | None) -> int:
    """A process's exit status as a shell shows it: 128 + N when signal N ended it."""
    if exitcode is None:
        return 1
    return 128 - exitcode if exitcode < 0 else exitcode


def _start(slot: _Slot, command: str, metrics_dir: str | None, run: RunNode) -> None:
    # Spawned processes inherit the environment as it is when they start.
    if metrics_dir:
        os.environ[MULTIPROCESS_DIR_ENV] = metrics_dir
    context = multiprocessing.get_context("spawn")
    # A pipe, not an Event: a supervisor killed with -9 leaves no semaphore behind.
    slot.ready, ready = context.Pipe(duplex=False)
    slot.told_to_stop = False
    slot.process = context.Process(
        target=_process_main,
        args=(command, slot.settings, os.getpid(), ready, run),
        name=f"jobstore-{command}-{slot.index}",
    )
    slot.process.start()
    ready.close()
    slot.started = time.monotonic()
    log.info(
        "process %d (node %s) started, pid %d", slot.index, slot.settings.node_id, slot.process.pid
    )


def _process_main(
    command: str, settings: Settings, supervisor: int, ready: Any, run: RunNode
) -> None:
    """The body of one process: a node on the shared port, until SIGTERM."""
    _die_with(supervisor)
    setup_logging(settings.log_level, settings.log_format)
    try:
        status = run(command, settings, reuse_port=True, on_ready=lambda: ready.send_bytes(b"up"))
    except JobstoreError as exc:
        status = exit_status(exc) or 1
        print(f"jobstore: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        status = 130
    sys.exit(status)


def _die_with(supervisor: int) -> None:
    """Ask Linux to send this process SIGTERM when its supervisor dies (even by kill -9)."""
    if not sys.platform.startswith("linux"):  # pragma: no cover
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != supervisor:  # it died before the request took effect
        sys.exit(1)
