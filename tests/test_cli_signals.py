"""Ctrl-C in the middle of an assessment: exit code 130 with one line on stderr, no traceback, and
no report, half report or temporary file left in the output folder."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SHARED_DATA, shared_path

PLANT_SCALE = Path(os.environ.get("PLANTGUARD_SHARED_TOOLS", SHARED_DATA.parent / "tools")) / "plant_scale.py"

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGINT") or sys.platform == "win32",
                                reason="POSIX signals")


@pytest.fixture(scope="module")
def big_capture(tmp_path_factory) -> Path:
    """Every shared capture, twice (tools/plant_scale.py): several seconds of analysis."""
    shared_path("pcaps")
    if not PLANT_SCALE.exists():
        pytest.skip(f"{PLANT_SCALE} not found (the shared tools)")
    out = tmp_path_factory.mktemp("big") / "plant.pcap"
    subprocess.run([sys.executable, str(PLANT_SCALE), "--replicas", "2", "--data", str(SHARED_DATA / "pcaps"),
                    str(out)], check=True, capture_output=True, timeout=300)
    return out


def _reading(pid: int, path: Path) -> bool:
    """The process has the capture open or mapped: the analysis has started."""
    target = str(path)
    try:
        if any(os.readlink(f"/proc/{pid}/fd/{fd}") == target for fd in os.listdir(f"/proc/{pid}/fd")):
            return True
        with open(f"/proc/{pid}/maps") as fh:
            return target in fh.read()
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see when the analysis starts")
@pytest.mark.parametrize("fmt", ["html", "json"])
def test_sigint_during_assess_leaves_nothing_behind(tmp_path, big_capture, fmt):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PLANTGUARD_DB"}
    proc = subprocess.Popen([sys.executable, "-m", "plantguard", "assess", str(big_capture), "-f", fmt,
                             "-o", str(out_dir / f"report.{fmt}"), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=env,
                            # as a terminal's Ctrl-C finds it, even when the tests run in a background
                            # job (which starts with SIGINT ignored, and Python keeps an ignored SIGINT)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not _reading(proc.pid, big_capture):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the analysis did not start"
            time.sleep(0.02)
        time.sleep(0.3)
        assert proc.poll() is None, "finished before it could be interrupted: make the capture bigger"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = stderr.decode("utf-8", "replace")
    assert proc.returncode in (130, 2), (proc.returncode, err)
    assert "Traceback" not in err and "internal error" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == ["plantguard: interrupted"], err
    assert stdout == b""
    assert sorted(p.name for p in out_dir.iterdir()) == []      # no report, no .part, no temporary file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_sigint_while_the_report_is_written_removes_the_temporary_file(tmp_path, monkeypatch):
    """The other window: Ctrl-C between writing the temporary file and renaming it."""
    from plantguard.cli.common import write_report
    real_replace = os.replace
    seen = []

    def replace(src, dst):
        seen.append(Path(src))
        assert Path(src).exists() and Path(src).parent == tmp_path      # beside the report, not in /tmp
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
        real_replace(src, dst)
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        write_report("x" * 1_000_000, tmp_path / "report.html")
    assert seen and list(tmp_path.iterdir()) == []


def _ctrl_c_out_of_compiled_code():
    """What Python raises when SIGINT's handler ran while a numba kernel returned."""
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as ki:
        raise SystemError("CPUDispatcher(<function kernel>) returned a result with an exception set") from ki


@pytest.mark.parametrize("which", ["engine", "reference"])
def test_ctrl_c_inside_compiled_code_stops_the_analysis(monkeypatch, which):
    """Not 'analysis stopped' on that capture with a report written: the interrupt goes on up."""
    from plantguard.capture import engine, reference
    path = shared_path("pcaps/zeek/modbus/modbusBig.pcap")
    if which == "engine":
        monkeypatch.setattr(engine.Engine, "process", lambda *a, **k: _ctrl_c_out_of_compiled_code())
        run = engine.analyze
    else:
        monkeypatch.setattr(reference, "decode_frame", lambda *a, **k: _ctrl_c_out_of_compiled_code())
        run = reference.analyze_reference
    with pytest.raises(KeyboardInterrupt):
        run([path])


def test_other_errors_still_stop_only_their_capture(monkeypatch):
    from plantguard.capture import engine
    path = shared_path("pcaps/zeek/modbus/modbusBig.pcap")

    def broken(*a, **k):
        raise SystemError("a real internal error")
    monkeypatch.setattr(engine.Engine, "process", broken)
    res = engine.analyze([path])
    assert res.captures[0].warning_counts.get("analysis_error") == 1
