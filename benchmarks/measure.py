"""Shared pieces of the benchmarks: the benchmark captures (built on first use into
benchmarks/.data/), the one helper that times a command in a fresh child process (wall time, CPU
time and peak RSS of that child from os.wait4, pinned to one core), machine facts and small
statistics. Used by run_benchmark.py and assess_overhead.py.
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / ".data"
TOOLS = ROOT.parent / "shared" / "tools"
POLL_SCALE = TOOLS / "poll_scale.py"
PLANT_SCALE = TOOLS / "plant_scale.py"
VENV_PY = ROOT / ".venv" / "bin" / "python"
PYTHON = str(VENV_PY) if VENV_PY.exists() else sys.executable
PLANTGUARD = [str(ROOT / ".venv" / "bin" / "plantguard")] if (ROOT / ".venv" / "bin" / "plantguard").exists() \
    else [PYTHON, "-m", "plantguard"]

# ------------------------------------------------------------------------------------ captures
# name -> (generator, arguments). The file name records the arguments, so a capture built with
# other arguments is never mistaken for this one.
CAPTURES = {
    "poll": ("poll", ["--seconds", "149", "--cells", "4"]),                       # ~0.93 M packets
    "poll10": ("poll", ["--seconds", "1490", "--cells", "4"]),                    # ~9.3 M packets
    "mixed": ("poll", ["--seconds", "112", "--cells", "4", "--background"]),      # ~0.94 M packets
    "plant4": ("plant", ["--replicas", "4"]),                                     # ~1.0 M packets
    "plant20": ("plant", ["--replicas", "20"]),                                   # ~5.0 M packets
}
# --smoke: the same kinds of capture, small enough to check that the script works
SMOKE_CAPTURES = {
    "poll": ("poll", ["--seconds", "10", "--cells", "1"]),
    "poll10": ("poll", ["--seconds", "100", "--cells", "1"]),
    "mixed": ("poll", ["--seconds", "10", "--cells", "1", "--background"]),
    "plant4": ("plant", ["--replicas", "1"]),
    "plant20": ("plant", ["--replicas", "2"]),
}


def scaled(spec: tuple[str, list[str]], k: int) -> tuple[str, list[str]]:
    """The polling capture spec k times as long (--seconds multiplied by k)."""
    kind, args = spec
    args = list(args)
    i = args.index("--seconds")
    args[i + 1] = str(int(args[i + 1]) * k)
    return kind, args


def capture_file(spec: tuple[str, list[str]], data_dir: Path) -> Path:
    kind, args = spec
    valued = [a for a in args if a != "--background"]
    opts = dict(zip(valued[::2], valued[1::2]))
    if kind == "plant":
        return data_dir / f"plant_r{opts['--replicas']}.pcap"
    prefix = "mix" if "--background" in args else "poll"
    return data_dir / f"{prefix}_s{opts['--seconds']}_c{opts['--cells']}.pcap"


def build(spec: tuple[str, list[str]], data_dir: Path = DATA) -> dict:
    """Build the capture if missing; return {path, packets, bytes, command}. The packet count is
    the generator's (kept in NAME.meta.json beside the capture), else capinfos'."""
    path = capture_file(spec, data_dir)
    meta_path = path.with_suffix(".meta.json")
    kind, args = spec
    tool = PLANT_SCALE if kind == "plant" else POLL_SCALE
    cmd = [sys.executable, str(tool)] + args + [str(path)]
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        print(f"building {path.name}: {tool.name} {' '.join(args)} ...", flush=True)
        t = time.perf_counter()
        p = subprocess.run(cmd[:-1] + [str(tmp)], capture_output=True, text=True, check=False)
        if p.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise RuntimeError(f"building {path.name} failed: {p.stderr[-800:]}")
        tmp.rename(path)
        last = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
        m = re.search(r"([\d,]+) packets", last)
        meta = {"command": " ".join(cmd), "packets": int(m.group(1).replace(",", "")) if m else None,
                "build_s": round(time.perf_counter() - t, 2), "generator_said": last}
        meta_path.write_text(json.dumps(meta, indent=1))
        print(f"  {last} ({meta['build_s']:.0f} s)", flush=True)
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"command": " ".join(cmd), "packets": None}
    if not meta.get("packets") and shutil.which("capinfos"):
        out = subprocess.run(["capinfos", "-c", "-M", "-T", str(path)], capture_output=True, text=True,
                             check=False).stdout
        try:
            meta["packets"] = int(out.strip().splitlines()[-1].split("\t")[-1])
        except (ValueError, IndexError):
            pass
        meta_path.write_text(json.dumps(meta, indent=1))
    return {"path": path, "file": path.name, "packets": meta.get("packets"), "bytes": path.stat().st_size,
            "command": meta["command"].replace(str(path), "OUT")}


def warm_page_cache(path: Path) -> None:
    """Read the file once so that every tool measured after it finds it in the page cache."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


# ------------------------------------------------------------------------------------ measuring
class Pinning:
    """How each measured child is held to one core: taskset -c CORE when installed, else
    sched_setaffinity in the child before exec, else not at all."""

    def __init__(self, core: int | None):
        self.core = core
        self.prefix: list[str] = []
        self.preexec = None
        if core is None:
            self.how = "not pinned (--no-pin)"
        elif shutil.which("taskset"):
            self.prefix = ["taskset", "-c", str(core)]
            self.how = f"taskset -c {core}"
        elif hasattr(os, "sched_setaffinity"):
            self.preexec = lambda: os.sched_setaffinity(0, {core})
            self.how = f"sched_setaffinity({{{core}}}) (taskset not installed)"
        else:
            self.how = "not pinned (no taskset, no sched_setaffinity)"


def measure(cmd: list[str], pin: Pinning, *, cwd: str | os.PathLike | None = None, env: dict | None = None,
            keep_stdout: bool = False) -> dict:
    """Run cmd in a fresh child process and return its wall seconds (spawn to reaped), CPU seconds
    (user + sys of the child and anything it waited for, from os.wait4), peak RSS in MB
    (ru_maxrss of the child), exit code and, if keep_stdout, its standard output. The child's
    environment gets BENCH_T_SPAWN (time.time() just before the spawn) so that it can report its
    own start-up time. Raises if the command fails. Bytecode is cached as in an installed package
    (pip compiles it at install): PYTHONDONTWRITEBYTECODE, set on some build machines, would make
    every measured run of an editable checkout compile plantguard's sources again (0.15 s)."""
    env = dict(os.environ if env is None else env)
    env.setdefault("LC_ALL", "C")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        env["BENCH_T_SPAWN"] = repr(time.time())
        t0 = time.perf_counter()
        p = subprocess.Popen(pin.prefix + cmd, stdout=out if keep_stdout else subprocess.DEVNULL, stderr=err,
                             cwd=cwd, env=env, preexec_fn=pin.preexec)  # noqa: PLW1509 (single-threaded parent)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        stdout = ""
        if keep_stdout:
            out.seek(0)
            stdout = out.read().decode(errors="replace")
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... exited {p.returncode}: {stderr[-800:]}")
    res = {"wall_s": wall, "user_s": ru.ru_utime, "sys_s": ru.ru_stime, "cpu_s": ru.ru_utime + ru.ru_stime,
           "peak_rss_mb": ru.ru_maxrss / 1024, "rc": p.returncode}
    if keep_stdout:
        res["stdout"] = stdout
    return res


# ------------------------------------------------------------------------------------ machine
def _version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "n/a"


def machine(pin: Pinning) -> dict:
    model = "n/a"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = _version([PYTHON, "-c", ("import platform, numpy; v = [platform.python_version(), numpy.__version__]\n"
                         "try:\n import numba; v.append(numba.__version__)\nexcept ImportError:\n v.append('not installed')\n"
                         "print(' '.join(v))")]).split()
    py, np_, nb = (versions + ["n/a"] * 3)[:3]
    git = _version(["git", "-C", str(ROOT), "describe", "--always", "--dirty"])
    return {"nproc": os.cpu_count(), "cpu_model": model, "arch": platform.machine(), "kernel": platform.release(),
            "python": py, "numpy": np_, "numba": nb, "tshark": _version(["tshark", "--version"]),
            "plantguard_commit": git, "pinning": pin.how, "loadavg_start": os.getloadavg()}


# ------------------------------------------------------------------------------------ statistics
def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def lstsq(xs: list[float], ys: list[float]) -> tuple[float, float, float] | None:
    """(slope, intercept, r²) of the least-squares line through the points, or None."""
    n = len(xs)
    if n < 2 or len(set(xs)) < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    slope = sxy / sxx
    icpt = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (icpt + slope * x)) ** 2 for x, y in zip(xs, ys))
    return slope, icpt, (1 - ss_res / ss_tot) if ss_tot else 1.0
