"""plantguard: passive security assessment of smart-manufacturing networks."""
__version__ = "0.1.0"
