"""PyTorch -> ONNX export with validation against PyTorch."""

from edgeport.exporter.onnx_export import EXPORTERS, ExportResult, export_onnx, onnx_predict, write_onnx
from edgeport.exporter.metadata import read_metadata, write_metadata

__all__ = ["EXPORTERS", "ExportResult", "export_onnx", "onnx_predict", "read_metadata", "write_metadata", "write_onnx"]
