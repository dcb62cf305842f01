"""Search over students, distillation, quantization and target settings (``edgeport search``)."""

from edgeport.search.runner import SearchOptions, run_search

__all__ = ["SearchOptions", "run_search"]
