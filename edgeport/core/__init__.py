"""Leaf utilities every layer uses: artifacts on disk, staging folders, manifests and their schema
versions, named registries, progress and consoles, package versions, benchmark defaults.

Nothing here imports another edgeport package (``make lint`` checks it): only ``edgeport.errors``.
"""
