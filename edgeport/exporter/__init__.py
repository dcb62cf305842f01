"""PyTorch -> ONNX export with validation against PyTorch."""

from edgeport.exporter.metadata import OnnxLineage, read_metadata, write_metadata
from edgeport.exporter.onnx_export import EXPORTERS, ExportResult, export_onnx, onnx_predict, write_onnx
from edgeport.exporter.scrub import scrub_model, scrub_onnx

__all__ = [
    "EXPORTERS",
    "ExportResult",
    "export_onnx",
    "onnx_predict",
    "OnnxLineage",
    "read_metadata",
    "scrub_model",
    "scrub_onnx",
    "write_metadata",
    "write_onnx",
]
