"""The README's examples, run as written against real nodes, top to bottom.

"Using it": every `sh` block, command by command, in the order the README gives them (the
node is on a free port, so `127.0.0.1:9191` is rewritten to it and JOBSTORE_URL names it, as
`make run ARGS=--port ...` users do); then its Python block with the official gpudb client.
"Your own endpoints": the module is written where the README says, and the node started with
the README's command finds it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.e2e import REPO_ROOT, Server, clean_env, free_port, wait_for

README = REPO_ROOT / "README.md"
FAILED = re.compile(r'"status":\s*"ERROR"|"status":\s*[45]\d\d\b|^HTTP/[\d.]+ [45]\d\d', re.M)


@dataclass(frozen=True)
class Block:
    section: str
    language: str
    text: str


def blocks() -> list[Block]:
    found, section = [], ""
    fence = re.compile(r"^```(\w+)\n(.*?)^```$", re.M | re.S)
    for part in re.split(r"^(## .*)$", README.read_text(), flags=re.M):
        if part.startswith("## "):
            section = part[3:].strip()
            continue
        found += [Block(section, m.group(1), m.group(2)) for m in fence.finditer(part)]
    return found


def commands(block: Block) -> list[str]:
    """One shell command per entry: continuations joined, comment-only lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block.text)
    return [line for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def environment(port: int) -> dict[str, str]:
    env = clean_env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["JOBSTORE_URL"] = f"http://127.0.0.1:{port}"
    return env


def at_port(text: str, port: int) -> str:
    return text.replace("127.0.0.1:9191", f"127.0.0.1:{port}")


def test_using_it_runs_as_written(tmp_path: Path) -> None:
    node = Server(f"sqlite:///{tmp_path / 'jobstore.db'}", tmp_path, node_id="readme")
    using = [b for b in blocks() if b.section == "Using it"]
    assert [b.language for b in using].count("sh") >= 4 and using[-1].language == "python"
    try:
        node.start()
        env = environment(node.port)
        for block in using:
            if block.language == "sh":
                for command in commands(block):
                    done = subprocess.run(
                        ["bash", "-c", at_port(command, node.port)],
                        cwd=tmp_path,
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=120,
                    )
                    said = done.stdout + done.stderr
                    assert done.returncode == 0, f"{command}\n{said}\n{node.logs()}"
                    assert not FAILED.search(done.stdout), f"{command}\n{said}"
            else:
                done = subprocess.run(
                    [sys.executable, "-c", at_port(block.text, node.port)],
                    cwd=tmp_path,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert done.returncode == 0, done.stderr
                assert done.stdout.strip() == 'DONE {"hello": "world"}', done.stdout
        listing = httpx.get(f"{node.url}/api/v1/jobs?limit=100", timeout=10).json()
        seen = {job["tag"]: (job["id"], job["status"]) for job in listing["items"]}
        assert seen == {
            "nightly-1": (1, "done"),  # the REST create; Kinetica's same create found it
            "nightly-2": (2, "done"),
            "too-long": (3, "cancelled"),
            "slow-1": (4, "cancelled"),
            "greeting": (6, "done"),  # 5 went to the repeated create of nightly-1
        }
    finally:
        node.cleanup()


def test_your_own_endpoint_runs_as_written(tmp_path: Path) -> None:
    own = [b for b in blocks() if b.section == "Your own endpoints"]
    module = next(b for b in own if b.language == "python")
    path = re.match(r"# (\S+)", module.text)
    assert path is not None, "the module's first line names its file"
    target = tmp_path / path.group(1)
    target.parent.mkdir(parents=True)
    (target.parent / "__init__.py").write_text("")
    target.write_text(module.text)
    [command] = commands(next(b for b in own if b.language == "sh"))
    port = free_port()
    argv = [*command.split("#")[0].split(), "--port", str(port)]
    argv += ["--database-url", f"sqlite:///{tmp_path / 'own.db'}"]
    env = environment(port)
    env["PYTHONPATH"] = ""  # nothing but the working directory makes mypkg importable
    log = (tmp_path / "node.log").open("wb")
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return proc.poll() is not None  # it died: stop waiting, the assert says why

        wait_for("the node", answers, timeout=30)
        assert proc.poll() is None, (tmp_path / "node.log").read_text()
        body = {"endpoint": "/count/words", "payload": {"text": "one two three"}}
        created = httpx.post(f"{url}/api/v1/jobs", json=body, timeout=10).json()
        job = httpx.get(f"{url}/api/v1/jobs/{created['id']}?wait=30", timeout=40).json()
        assert job["status"] == "done", job
        result = httpx.get(f"{url}/api/v1/jobs/{created['id']}/result", timeout=10).json()
        assert json.dumps(result["result"]["json"]) == '{"words": 3}'
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
