"""The README stays true: its site-file example loads, and its quick start names the test command
that .ci/run runs."""
import re
from pathlib import Path

from plantguard.site import load_site

ROOT = Path(__file__).resolve().parents[1]


def test_readme_site_example_is_valid(tmp_path):
    text = (ROOT / "README.md").read_text()
    example = re.search(r"### The site file\n\n```yaml\n(.*?)```", text, re.S).group(1)
    f = tmp_path / "site.yaml"
    f.write_text(example)
    site = load_site(f)
    assert [z.name for z in site.zones] == ["control", "sensing", "office", "dmz"]


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    cmd = "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest"
    assert cmd in readme and cmd in ci


def test_example_site_file_is_valid():
    assert load_site(ROOT / "examples" / "site.yaml").zones
