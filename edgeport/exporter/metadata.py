"""The short form of the manifest stored in an ONNX file's metadata_props."""

from __future__ import annotations

import os

import onnx

from edgeport.exporter.scrub import save_atomic, scrub_model

PREFIX = "edgeport."


def write_metadata(path: str | os.PathLike, values: dict[str, str]) -> None:
    """Set ``edgeport.*`` metadata_props in place (the file's sha256 changes, so do this before hashing).

    Every ONNX file edgeport ships passes through here last, so the file is also scrubbed of tools'
    debug metadata (paths of this machine; see :mod:`edgeport.exporter.scrub`), whichever tool wrote it.
    """
    model = onnx.load(str(path), load_external_data=False)
    scrub_model(model)
    kept = [p for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in sorted(values.items()):
        model.metadata_props.add(key=PREFIX + key, value=str(value))
    save_atomic(model, path)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    model = onnx.load(str(path), load_external_data=False)
    return {p.key[len(PREFIX) :]: p.value for p in model.metadata_props if p.key.startswith(PREFIX)}
