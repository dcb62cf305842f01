"""How a quantization is chosen: auto's recipes measured side by side, and accuracy-aware fallback."""
