"""Graph rewrites around a backend: SmoothQuant smoothing before it, parameter repair after it."""
