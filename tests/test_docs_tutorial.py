"""docs/first-hour.md stays true: every command of its ```sh blocks runs, in order, in a fresh
folder where `captures/` is a shared capture folder and `advisories/` the shared CSAF and KEV
files, through the real command line. A command exits 0 unless the text says `# exit N`; each
```text block after a ```sh block lists lines its commands must print (the figures the text
quotes); every file a command writes (-o FILE, > FILE) must exist afterwards. ```console blocks (install,
a pipeline) are shown, not run."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "first-hour.md"
CAPTURES = "pcaps/icsnpp-s7comm"
ADVISORIES = "vuln"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def steps(text: str) -> list[tuple[list[str], list[str]]]:
    """(commands, expected output lines) per ```sh block, the lines from the ```text block that
    follows it (if the next block is one)."""
    blocks = [(m.group(1), m.group(2)) for m in _BLOCK.finditer(text)]
    out = []
    for i, (lang, body) in enumerate(blocks):
        if lang != "sh":
            continue
        expected = blocks[i + 1][1].splitlines() if i + 1 < len(blocks) and blocks[i + 1][0] == "text" else []
        out.append(([ln for ln in body.splitlines() if ln.strip() and not ln.lstrip().startswith("#")],
                     [ln for ln in expected if ln.strip()]))
    return out


def expected_exit(line: str) -> int:
    m = re.search(r"#\s*exit (\d+)\s*$", line)
    return int(m.group(1)) if m else 0


def written_files(line: str) -> list[str]:
    words = shlex.split(line, comments=True)
    if words[0] != "plantguard":
        return []                  # grep -o is not an output file
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-o", "--output", ">") and words[i + 1] != "-"]


def test_tutorial_blocks_are_what_the_test_runs():
    found = steps(TUTORIAL.read_text(encoding="utf-8"))
    commands = [c for cmds, _ in found for c in cmds]
    assert len(found) >= 8 and all(c.split()[0] in ("plantguard", "grep") for c in commands), commands
    for sub in ("assess", "inventory", "site init", "site check", "intel import", "--fail-on"):
        assert any(sub in c for c in commands), f"the tutorial lost {sub!r}"
    assert any(expected_exit(c) == 1 for c in commands), "the --fail-on step that fails is gone"


@pytest.mark.slow
def test_first_hour_tutorial_runs_as_written(tmp_path, shared):
    work = tmp_path / "plant"
    work.mkdir()
    (work / "captures").symlink_to(shared(CAPTURES), target_is_directory=True)
    (work / "advisories").symlink_to(shared(ADVISORIES), target_is_directory=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "plantguard"          # the tutorial's `plantguard` is this tree's command line
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m plantguard "$@"\n')
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
           "PYTHONPATH": str(ROOT / "src"), "HOME": str(tmp_path), "COLUMNS": "200"}
    env.pop("PLANTGUARD_DB", None)
    for commands, expected in steps(TUTORIAL.read_text(encoding="utf-8")):
        printed = ""
        for line in commands:
            run = subprocess.run(["bash", "-c", line], check=False, cwd=work, env=env, capture_output=True, text=True,
                                 timeout=240)
            printed += run.stdout + run.stderr
            assert run.returncode == expected_exit(line), f"{line}: exit {run.returncode}\n{run.stderr}"
            assert "Traceback" not in run.stderr, run.stderr
            for name in written_files(line):
                assert (work / name).is_file() and (work / name).stat().st_size > 0, f"{line}: no {name}"
        for want in expected:
            assert want in printed, f"the tutorial says {want!r}; the commands printed:\n{printed}"
