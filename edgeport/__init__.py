"""edgeport: distil, quantize, export, benchmark and gate models for deployment."""

from importlib.metadata import version

__version__ = version("edgeport")  # pyproject.toml holds the one version number
