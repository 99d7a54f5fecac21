"""Capture input: file formats, columnar L2-L4 decode, flows, and the engine that drives them."""
