"""What the central server and its sensors share: the envelope format and the wire names."""
