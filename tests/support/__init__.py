"""Test support, one module per job; tests import it as `from support.X import ...` (pytest puts
tests/ on sys.path, as it does for conftest):

- packets: frame, capture and BER builders, and a classic-pcap reader (no capture library needed)
- decode: the deep tier run over a capture (unfolded, optionally with a tap on a decoder function),
  Packets built by hand for a decoder, and selecting observations
- baselines: the peer tools' logs (Zeek/ICSNPP TSV logs, ORACLE_MAP.tsv) and agreement measures
- peers: tshark as the second oracle
- checks: one practice check run on hand-built observations, flows, assets and site files
- trunk: captures of a mirrored router trunk built from real traffic
- ring: a real capture written as the pieces of a capture ring (dumpcap -b names)
- monitor: `plantguard monitor` as a subprocess, and the alerts a file sink received
- week: a simulated week of plant traffic from real captures, as hourly ring pieces
"""
