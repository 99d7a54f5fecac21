"""A hostile site file costs bounded time and memory and ends in one line naming the file: deep
nesting, a device or FIFO instead of a file, more than the size cap, alias bombs, bad UTF-8,
and entry counts that a pairwise check would turn into hours. At the end: the same refusal of
FIFOs and devices for capture paths (capture/sources.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from plantguard.site import MAX_FILE_BYTES, SiteError, load_site, parse_site
from plantguard.site.load import MAX_DEPTH


def one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    return msg


def test_1200_nested_brackets_is_a_site_error_not_a_recursion_error(tmp_path):
    p = tmp_path / "deep.yaml"
    p.write_text("zones: " + "[" * 1200 + "]" * 1200 + "\n")
    with pytest.raises(SiteError) as exc:
        load_site(p)
    assert one_line(exc) == f"{p}:1: nested deeper than {MAX_DEPTH} levels (a site file needs no more than a few)"


def test_deep_block_nesting_names_the_line():
    text = "".join(" " * i + f"k{i}:\n" for i in range(1200))
    with pytest.raises(SiteError) as exc:
        parse_site(text, "s.yaml")
    assert one_line(exc).startswith(f"s.yaml:{MAX_DEPTH}: nested deeper than")


def test_nesting_within_the_bound_reaches_the_validator():
    with pytest.raises(SiteError) as exc:
        parse_site("zones: " + "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2) + "\n", "s.yaml")
    assert "nested deeper" not in one_line(exc)


def test_dev_zero_is_refused_before_reading():
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    with pytest.raises(SiteError) as exc:
        load_site("/dev/zero")
    assert one_line(exc) == "/dev/zero: cannot read site file (a character device, not a regular file)"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "site.yaml"
    os.mkfifo(fifo)
    # in a child with a timeout: a regression would block on open() waiting for a writer
    code = ("import sys\nfrom plantguard.site import SiteError, load_site\n"
            "try:\n    load_site(sys.argv[1])\nexcept SiteError as e:\n    print(e)\n")
    p = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"{fifo}: cannot read site file (a FIFO, not a regular file)"


def test_directory_is_refused(tmp_path):
    with pytest.raises(SiteError) as exc:
        load_site(tmp_path)
    assert one_line(exc) == f"{tmp_path}: cannot read site file (a directory, not a regular file)"


def test_cli_site_fifo_and_device_are_one_line_errors(tmp_path):
    from conftest import shared_path
    cap = shared_path("pcaps/icsnpp-enip/enip_cip_example.pcap")
    fifo = tmp_path / "site.fifo"
    os.mkfifo(fifo)
    for site, kind in ((fifo, "a FIFO"), ("/dev/zero", "a character device")):
        p = subprocess.run([sys.executable, "-m", "plantguard", "inventory", str(cap), "--no-store",
                            "--site", str(site)], capture_output=True, text=True, timeout=120)
        assert p.returncode == 2, p.stderr
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert lines == [f"plantguard: error: {site}: cannot read site file ({kind}, not a regular file)"]


def test_larger_than_the_cap_reads_only_cap_plus_one(tmp_path, monkeypatch):
    p = tmp_path / "big.yaml"
    with open(p, "wb") as f:
        f.write(b"# padding\n" * (MAX_FILE_BYTES // 10 + 10))
    read_sizes = []
    real_fdopen = os.fdopen

    def spying_fdopen(fd, *a, **kw):
        f = real_fdopen(fd, *a, **kw)
        real_read = f.read

        def read(n=-1):
            read_sizes.append(n)
            return real_read(n)
        f.read = read
        return f
    monkeypatch.setattr(os, "fdopen", spying_fdopen)
    with pytest.raises(SiteError) as exc:
        load_site(p)
    assert one_line(exc) == f"{p}:1: file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB"
    assert read_sizes == [MAX_FILE_BYTES + 1]


def test_billion_laughs_is_bounded():
    """Aliases are composed as shared nodes (never expanded) and the validator counts every value
    it reads (MAX_NODES), so a bomb through keys the schema allows ends quickly."""
    lines = ["zones:", "  - {name: a, kind: it, vlans: &v0 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}"]
    for i in range(1, 10):
        lines.append(f"  - {{name: a{i}, kind: it, vlans: &v{i} [" + ", ".join([f"*v{i - 1}"] * 10) + "]}")
    t = time.perf_counter()
    with pytest.raises(SiteError) as exc:
        parse_site("\n".join(lines) + "\n", "s.yaml")
    assert time.perf_counter() - t < 10
    assert one_line(exc).startswith("s.yaml:2: zones[1].vlans[0]: expected a value")
    # the classic bomb under keys that are not in the schema stops at the first unknown key
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    with pytest.raises(SiteError) as exc:
        parse_site("\n".join(lines) + "\n", "s.yaml")
    assert one_line(exc).startswith("s.yaml:1: a0: unknown key")


def test_alias_fan_out_is_capped_by_the_node_count(monkeypatch):
    import plantguard.site.nodes as nodes
    monkeypatch.setattr(nodes, "MAX_NODES", 1_000)
    text = "engineering_workstations: &x 10.0.0.1\nassets: [" + ", ".join(["{ip: *x}"] * 3) + "]\n"
    # the same anchor read many times is counted every time it is read
    many = "engineering_workstations: [&x 10.0.0.1, " + ", ".join(["*x"] * 2_000) + "]\n"
    with pytest.raises(SiteError) as exc:
        parse_site(many, "s.yaml")
    assert one_line(exc) == "s.yaml:1: too many entries (more than 1,000)"
    with pytest.raises(SiteError, match="already declared"):
        parse_site(text, "s.yaml")


def test_recursive_alias_is_an_error_not_a_loop():
    with pytest.raises(SiteError) as exc:
        parse_site("engineering_workstations: &a [*a]\n", "s.yaml")
    assert one_line(exc) == "s.yaml:1: engineering_workstations[0]: expected a value, found a list"


def test_invalid_utf8_names_the_line(tmp_path):
    p = tmp_path / "site.yaml"
    p.write_bytes(b"site: A\n# comment\nzones: [\xc3\x28]\n")
    with pytest.raises(SiteError) as exc:
        load_site(p)
    assert one_line(exc) == f"{p}:3: file is not UTF-8 text"


def test_many_networks_load_in_linear_time():
    """Overlaps were checked pairwise: 8,000 networks took 40 s, the 200,000 a 5 MB file holds
    would take days. Now the check is a bisection per network."""
    nets = ", ".join(f"10.{i >> 8}.{i & 255}.0/24" for i in range(20_000))
    t = time.perf_counter()
    site = parse_site(f"zones:\n  - {{name: a, kind: it, networks: [{nets}]}}\n")
    assert len(site.zones[0].networks) == 20_000
    assert time.perf_counter() - t < 20


def test_overlap_names_the_first_declared_network():
    text = ("zones:\n  - {name: a, kind: it, networks: [10.0.3.0/24, 10.0.1.0/24, 10.1.0.0/16]}\n"
            "  - {name: b, kind: it, networks: [192.168.0.0/24, 10.0.0.0/8]}\n")
    with pytest.raises(SiteError) as exc:
        parse_site(text, "s.yaml")
    assert one_line(exc) == "s.yaml:3: zones[1].networks[1]: 10.0.0.0/8 overlaps 10.0.3.0/24 of zone 'a' (line 2)"
    text = ("zones:\n  - {name: a, kind: it, networks: [10.0.0.0/16, 'fd00::/64']}\n"
            "  - {name: b, kind: it, networks: ['fd00::/48', 10.0.0.0/24]}\n")
    with pytest.raises(SiteError) as exc:
        parse_site(text, "s.yaml")
    assert one_line(exc) == "s.yaml:3: zones[1].networks[0]: fd00::/48 overlaps fd00::/64 of zone 'a' (line 2)"
    # disjoint neighbours, either side, are fine
    parse_site("zones:\n  - {name: a, kind: it, networks: [10.0.2.0/24, 10.0.0.0/24, 10.0.1.0/24, 10.0.3.0/24]}\n")


def test_many_zones_and_egress_rules_load_in_linear_time():
    n = 2_000
    zones = "".join(f"  - {{name: z{i}, kind: it, vlans: [{i % 4000}]}}\n" for i in range(n))
    egress = "".join(f"  - {{zone: z{i}}}\n" for i in range(n))
    t = time.perf_counter()
    site = parse_site(f"zones:\n{zones}egress:\n{egress}")
    assert len(site.zones) == n and len(site.egress) == n
    assert time.perf_counter() - t < 30
    with pytest.raises(SiteError, match=r"zone 'z1' is already declared on line 3"):
        parse_site(f"zones:\n{zones}  - {{name: z1, kind: it, vlans: [1]}}\n")
    with pytest.raises(SiteError, match=r"zone 'z1' already has an egress rule on line"):
        parse_site(f"zones:\n{zones}egress:\n{egress}  - {{zone: z1}}\n")


# ---------------------------------------------------------------------------------------------
# capture paths (plantguard.capture.sources)
# ---------------------------------------------------------------------------------------------

def test_capture_path_regular_file_and_directory_pass(tmp_path):
    from plantguard.capture.sources import check_capture_path, open_capture
    f = tmp_path / "a.pcap"
    f.write_bytes(b"\xd4\xc3\xb2\xa1")
    check_capture_path(f)
    check_capture_path(tmp_path)        # directories are expanded by the caller
    link = tmp_path / "link.pcap"
    link.symlink_to(f)
    check_capture_path(link)
    with open_capture(link) as fh:
        assert fh.read() == b"\xd4\xc3\xb2\xa1"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_capture_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "live.pcap"
    os.mkfifo(fifo)
    code = ("import sys\nfrom plantguard.capture.sources import check_capture_path, open_capture\n"
            "from plantguard.errors import InputError\n"
            "for f in (check_capture_path, open_capture):\n"
            "    try:\n        f(sys.argv[1])\n    except InputError as e:\n        print(e)\n")
    p = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [f"{fifo}: cannot read capture (a FIFO, not a regular file)"] * 2


def test_capture_device_missing_and_socket_are_refused(tmp_path):
    import socket

    from plantguard.capture.sources import check_capture_path, open_capture
    from plantguard.errors import InputError
    if os.path.exists("/dev/zero"):
        with pytest.raises(InputError) as exc:
            check_capture_path("/dev/zero")
        assert one_line(exc) == "/dev/zero: cannot read capture (a character device, not a regular file)"
    with pytest.raises(InputError) as exc:
        check_capture_path(tmp_path / "nope.pcap")
    assert one_line(exc) == f"{tmp_path / 'nope.pcap'}: no such file or directory"
    with pytest.raises(InputError) as exc:
        open_capture(tmp_path)
    assert one_line(exc) == f"{tmp_path}: cannot read capture (a directory, not a regular file)"
    sock_path = tmp_path / "s.sock"
    if hasattr(socket, "AF_UNIX") and len(str(sock_path)) < 100:   # sun_path is short
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(sock_path))
            with pytest.raises(InputError) as exc:
                check_capture_path(sock_path)
        assert one_line(exc) == f"{sock_path}: cannot read capture (a socket, not a regular file)"
