"""The quantization backends: each module declares its config type and registers its backend."""
