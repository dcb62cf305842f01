"""edgeport: distil, quantize, export, benchmark and gate models for deployment."""

__version__ = "0.1.0"
