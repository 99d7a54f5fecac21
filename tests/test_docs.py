"""The docs say what the code does: generated pages equal what plantguard.docs_gen builds from
the declarations today, and the 'add a protocol' and 'add a check' steps of docs/development.md,
followed to the letter in a copy of the tree, give a protocol and a check that run end to end."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.packets import tcp_conversation_pcap

from plantguard import docs_gen

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.mark.parametrize("page", sorted(docs_gen.PAGES))
def test_generated_page_is_current(page):
    shipped = (DOCS / page).read_text(encoding="utf-8")
    assert shipped == docs_gen.PAGES[page](), f"docs/{page} is stale: run python -m plantguard.docs_gen"


def documented_files() -> dict[str, str]:
    """The complete example files of development.md: ```python file=PATH blocks."""
    text = (DOCS / "development.md").read_text(encoding="utf-8")
    return dict(re.findall(r"```python file=(\S+)\n(.*?)```", text, re.S))


@pytest.mark.slow
def test_development_md_protocol_and_check_run_end_to_end(tmp_path):
    files = documented_files()
    assert set(files) == {"src/plantguard/protocols/toy.py", "src/plantguard/checks/toy.py"}
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for rel, body in files.items():
        (tree / rel).write_text(body)
    cap = tmp_path / "toy.pcap"
    cap.write_bytes(tcp_conversation_pcap("10.0.0.1", "10.0.0.2", 9999,
                                          [(True, b"TOY1 hello"), (False, b"TOY1 Widget 3000")]))
    env = {"PYTHONPATH": str(tree / "src"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "plantguard", "assess", str(cap), "--format", "json",
                          "-o", str(tmp_path / "out.json")], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    contract = json.loads((tmp_path / "out.json").read_text())
    server = next(a for a in contract["assets"] if a["ip"] == "10.0.0.2")
    assert server["role"] == "plc" and server["identity"].get("product") == "Widget 3000", server
    toy = [f for f in contract["findings"] if f["check"] == "services.toy"]
    assert [(f["status"], f["assets"]) for f in toy] == [("fail", ["10.0.0.2"])]
    titles = [i["title"] for h in ("immediate", "1-3 months", "3+ months") for i in contract["roadmap"][h]]
    assert "Switch off the toy service" in titles


def _tree_block() -> str:
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    return text.split("## The tree", 1)[1].split("```", 2)[1]


def test_architecture_tree_names_every_module_and_only_real_ones():
    src = ROOT / "src" / "plantguard"
    block = _tree_block()
    real = {p.relative_to(src) for p in src.rglob("*.py")
            if "migrations" not in p.parts and "__pycache__" not in p.parts}
    words = set(re.findall(r"\b([a-z_0-9]+\.py)\b", block))
    for pkg in {p.parent for p in real if p.parent != Path(".")}:
        assert re.search(rf"^ +{pkg.name}/ ", block, re.M), f"{pkg}/ missing from docs/architecture.md"
    missing = sorted(str(p) for p in real if p.name not in words)
    assert not missing, f"modules missing from docs/architecture.md: {missing}"
    stale = sorted(w for w in words if w not in {p.name for p in real})
    assert not stale, f"in docs/architecture.md but not in src/: {stale}"
