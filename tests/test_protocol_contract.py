"""Every protocol declares itself once (SPEC) and the registry refuses a wrong declaration with
one line; every list of protocol names elsewhere is derived from the registry; adding a protocol
is one file, and it then runs end to end through the command line."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.packets import eth, ipv4, pcap_bytes, tcp

from plantguard.checks import _common
from plantguard.inventory import roles
from plantguard.inventory.asset import CONTROLLER_ROLES
from plantguard.model import OBSERVATION_KINDS
from plantguard.protocols import registry
from plantguard.protocols._spec import SERVER_ROLES, TRAITS, ProtocolSpec, ProtocolSpecError

SRC = Path(__file__).resolve().parents[1] / "src"
README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_protocol_module_declares_a_valid_unique_spec():
    specs = registry.protocol_specs()
    assert len(specs) >= 20
    assert len({s.name for s in specs}) == len(specs)
    for s in specs:
        assert isinstance(s, ProtocolSpec)
        assert set(s.traits) <= set(TRAITS)
        assert set(s.observes) <= set(OBSERVATION_KINDS) and s.observes, s.name


def test_server_roles_are_inventory_roles_and_controllers_are_controller_roles():
    from plantguard.inventory.asset import OT_ROLES
    assert set(SERVER_ROLES) <= OT_ROLES | {"gateway", "broker"}
    for name in registry.names_with_trait("controller-server"):
        assert registry.spec_of(name).server_role in CONTROLLER_ROLES, name


def test_policy_lists_are_the_registry_traits():
    industrial = registry.names_with_trait("industrial")
    assert industrial == {"modbus", "enip", "s7comm", "dnp3", "bacnet", "profinet", "ethercat", "opcua", "iec104",
                          "fins", "fox", "hart-ip", "ads", "goose", "sv", "mms", "synchrophasor", "codesys",
                          "melsec", "melsoft"}
    assert _common.INDUSTRIAL_PROTOCOLS == industrial == roles.INDUSTRIAL_APPS
    assert _common.UNAUTHENTICATED_CONTROL == registry.names_with_trait("unauthenticated-control")
    assert roles.CONTROLLER_SERVER_APPS == registry.server_roles()


def test_readme_lists_every_protocol_in_its_layer():
    rows = {line.split("|")[1].strip(): line.split("|")[2] for line in README.read_text().splitlines()
            if line.startswith("| industrial |") or line.startswith("| IT |")}
    for s in registry.protocol_specs():
        assert s.title in rows["industrial" if s.layer == "industrial" else "IT"], s.name


def test_routine_recognisers_live_beside_their_decoders():
    from plantguard.capture import routine
    with_rules = {s.name for s in registry.protocol_specs() if s.routine}
    assert with_rules == {"modbus", "enip", "s7comm", "dnp3", "tls", "bacnet", "fins", "ethercat", "hart-ip",
                          "ads", "mms", "synchrophasor", "codesys", "melsec", "melsoft"}
    assert {s.name for s in registry.protocol_specs() if s.frame_routine} == {"ethercat", "goose", "sv"}
    for m in registry.protocol_modules():
        for fn in [r.fn for r in m.SPEC.routine] + ([m.SPEC.frame_routine] if m.SPEC.frame_routine else []):
            assert fn.__module__.split(".")[:3] == m.__name__.split(".")[:3], (fn, m)
    rules = routine.recognisers(registry.protocol_modules())
    for m, r in zip(registry.protocol_modules(), rules):
        assert (r == []) == (not m.SPEC.replay)


# --- misdeclared modules: one line, naming the module -------------------------------------

GOOD = '''
from plantguard.protocols._spec import ProtocolSpec
NAME = "toy"
def signature(payload): return payload[:4] == b"TOY1"
def decode(pkt): return [pkt.observe("service", NAME, subject="dst", name=NAME)]
'''
BAD = {
    "typo": ('SPEC = ProtocolSpec(name=NAME, title="Toy", layer="it", decode=decode, signature=signature, '
             'tcp_port=(9999,))', "ProtocolSpec has no key 'tcp_port' (did you mean 'tcp_ports'?)"),
    "no-spec": ("TCP_PORTS = (9999,)", "declares no SPEC"),
    "legacy": ('TCP_PORTS = (9999,)\nSPEC = ProtocolSpec(name=NAME, title="Toy", layer="it", decode=decode, '
               'signature=signature, tcp_ports=(9999,))', "TCP_PORTS at module level"),
    "bad-port": ('SPEC = ProtocolSpec(name=NAME, title="Toy", layer="it", decode=decode, signature=signature, '
                 'tcp_ports=(70000,))', "tcp_ports must be a tuple of integers in 1..65535"),
    "silent": ('SPEC = ProtocolSpec(name=NAME, title="Toy", layer="it", decode=decode, signature=signature)',
               "it would never see a packet"),
    "trait": ('SPEC = ProtocolSpec(name=NAME, title="Toy", layer="it", decode=decode, signature=signature, '
              'tcp_ports=(9999,), traits=frozenset({"industriel"}))', "traits must be a frozenset"),
    "wide-signature": ('SPEC = ProtocolSpec(name=NAME, title="Toy", layer="it", decode=decode, signature=signature, '
                       'tcp_ports=(9999,), any_port_signature=signature)', "any_port_signature needs any_port"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_misdeclared_protocol_fails_at_load_with_one_line(tmp_path, monkeypatch, case):
    pkg = tmp_path / f"toyproto_{case.replace('-', '_')}"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "toy.py").write_text(GOOD + BAD[case][0] + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ProtocolSpecError) as e:
        registry.load_module(f"{pkg.name}.toy")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{pkg.name}.toy: ") and BAD[case][1] in msg, msg


# --- adding a protocol: one file, seen end to end -----------------------------------------

TOY = GOOD + '''
SPEC = ProtocolSpec(name=NAME, title="Toy", layer="industrial", decode=decode, signature=signature,
                    tcp_ports=(9999,), traits=frozenset({"industrial", "controller-server"}),
                    server_role="plc", observes=("service",))
'''


def _toy_capture(path: Path) -> None:
    cli, srv = "10.0.0.1", "10.0.0.2"
    m1, m2 = "02:00:00:00:00:01", "02:00:00:00:00:02"
    frames = [eth(m1, m2, 0x0800, ipv4(cli, srv, 6, tcp(40000, 9999, b"", flags=0x02, seq=1))),
              eth(m2, m1, 0x0800, ipv4(srv, cli, 6, tcp(9999, 40000, b"", flags=0x12, seq=1))),
              eth(m1, m2, 0x0800, ipv4(cli, srv, 6, tcp(40000, 9999, b"TOY1 hello", seq=2)))]
    path.write_bytes(pcap_bytes([(1.7e9 + i, f) for i, f in enumerate(frames)]))


@pytest.mark.slow
def test_adding_a_protocol_is_one_file(tmp_path):
    tree = tmp_path / "src"
    shutil.copytree(SRC / "plantguard", tree / "plantguard", ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "plantguard" / "protocols" / "toy.py").write_text(textwrap.dedent(TOY))
    cap = tmp_path / "toy.pcap"
    _toy_capture(cap)
    env = {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "plantguard", "inventory", str(cap), "--format", "json",
                          "--db", str(tmp_path / "pg.db")], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    assets = {a["ip"]: a for a in json.loads(run.stdout)["assets"]}
    server = assets["10.0.0.2"]
    assert "toy" in json.dumps(server["services"]), server
    assert server["role"] == "plc", server
    # the same file with a typo stops the command with one line and exit code 2
    (tree / "plantguard" / "protocols" / "toy.py").write_text(TOY.replace("tcp_ports=", "tcp_port="))
    run = subprocess.run([sys.executable, "-m", "plantguard", "inventory", str(cap), "--db",
                          str(tmp_path / "pg.db")], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=120)
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1 and "tcp_port" in run.stderr, run.stderr
