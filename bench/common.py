"""What the HTTP benchmarks share: percentiles, threads started together, a gunicorn server, a keep-alive client.

Imported as ``bench.common`` (the benchmarks keep their own folder off the import path: ``bench/optimizer.py`` is
named like the package the service imports).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_threads(worker: Callable[[int], None], count: int) -> float:
    """Run ``count`` workers at once; the seconds until the last one ends."""
    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(port: int, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server on port {port} did not come up")


def start_gunicorn(url: str, port: int, workers: int = 2, threads: int = 4,
                   env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(workers), "--threads", str(threads), "-b", f"127.0.0.1:{port}",
         "--log-level", "warning", "wsgi:app"],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": url, "SECRET_KEY": "bench", **(env or {})},
        start_new_session=True)  # its own process group: a crash test kills the master and workers together
    wait_until_up(port)
    return server


@contextmanager
def gunicorn(url: str, workers: int = 2, threads: int = 4, env: dict[str, str] | None = None) -> Iterator[int]:
    """A gunicorn serving the service on PostgreSQL at ``url``, on a free port (yielded), stopped afterwards."""
    port = free_port()
    server = start_gunicorn(url, port, workers, threads, env)
    try:
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


class Client:
    """One keep-alive connection; every request's latency is kept."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.latencies: list[float] = []

    def request(self, method: str, path: str, key: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """The status and the decoded answer (a connection lost to a restarting server is opened again once)."""
        payload = None if body is None else json.dumps(body).encode()
        all_headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", **(headers or {})}
        started = time.perf_counter()
        for again in (False, True):
            try:
                self.connection.request(method, path, payload, all_headers)
                response = self.connection.getresponse()
                data = response.read()
                break
            except (OSError, http.client.HTTPException):
                self.connection.close()
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if again:
                    raise
        self.latencies.append(time.perf_counter() - started)
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:
            return response.status, data[:300]

    def post(self, path: str, key: str, body: Any) -> Any:
        status, answer = self.request("POST", path, key, body)
        if status >= 300:
            raise RuntimeError(f"{path}: {status} {answer!r}")
        return answer
