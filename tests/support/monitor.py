"""`plantguard monitor` as a subprocess for the monitor's tests: started on a ring directory or an
interface, its stderr kept in a file, stopped with a signal; and the alerts a sink received."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class MonitorProc:
    def __init__(self, args: list[str], workdir: Path, prefix: list[str] = ()):
        self.stderr = workdir / "monitor.stderr"
        self.stdout = workdir / "monitor.stdout"
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
        argv = [*prefix, sys.executable, "-m", "plantguard", "monitor", *args]
        with open(self.stderr, "ab") as err, open(self.stdout, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=workdir, env=env)

    def wait_started(self, timeout: float = 60.0) -> None:
        """Until it says it is watching (its engine and sinks are set up)."""
        self.wait_for(lambda: "monitor: watching" in self.stderr.read_text(errors="replace"), timeout, "start")

    def wait_for(self, cond, timeout: float, what: str) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return time.monotonic()
            assert self.proc.poll() is None, f"monitor exited {self.proc.returncode}: {self.stderr.read_text()}"
            time.sleep(0.02)
        raise AssertionError(f"monitor: no {what} within {timeout} s; stderr: {self.stderr.read_text()[-2000:]}")

    def stop(self, sig=signal.SIGTERM, timeout: float = 60.0) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def jsonl(path: Path) -> list[dict]:
    """Whole lines of an ECS file sink (a line being written is left for later)."""
    if not path.exists():
        return []
    data = path.read_bytes()
    return [json.loads(x) for x in data[:data.rfind(b"\n") + 1].split(b"\n") if x]


def alerts_of(docs: list[dict], action: str | None = None) -> list[dict]:
    return [d for d in docs if d["event"]["kind"] == "alert" and (action is None or d["event"]["action"] == action)]
