"""One module per protocol. Each module declares, as plain module attributes:

    NAME         short application name ("modbus")
    TCP_PORTS    tuple of well-known TCP server ports (may be empty)
    UDP_PORTS    tuple of well-known UDP server ports (may be empty)
    ETHERTYPES   tuple of Ethernet types for layer-2 protocols (may be empty)
    ANY_PORT     True if signature() is strict enough to recognise the protocol on any port
    signature(payload: bytes) -> bool
                 cheap test that a payload from a client or server looks like this protocol;
                 used both to recognise it on unusual ports and to reject other bytes on its port
    decode(pkt: plantguard.model.Packet) -> list[Observation]
                 the deep decode; may keep per-flow state in pkt.state; may raise on garbage
                 (the engine counts and skips such packets)

Modules are discovered automatically (see registry.py); adding a file adds a protocol.
"""
