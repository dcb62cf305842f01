"""Strip exporter debug metadata from ONNX files so that artifacts are path-free and reproducible.

torch.onnx's dynamo exporter annotates every node with ``metadata_props`` such as
``pkg.torch.onnx.stack_trace`` (Python tracebacks with the absolute paths of the builder's source
tree and virtualenv), ``pkg.torch.onnx.fx_node``, ``pkg.torch.onnx.name_scopes``,
``pkg.torch.onnx.class_hierarchy`` and ``namespace``; the graph, its inputs, outputs and value_info
get ``pkg.torch.export.*`` and ``pkg.onnxscript.*`` entries, and ONNX Runtime's quantizer copies node
annotations from its input into the int8 model. None of it changes what the model computes, but it
leaks the build machine's file system into a shipped artifact and makes two same-seed builds from
two checkouts hash differently.

The rule (applied to the whole model, subgraphs, functions and training info included):

* **Below the model level** -- graph, nodes, attributes, inputs, outputs, value_info, initializers,
  functions, subgraphs: every ``doc_string`` and every ``metadata_props`` entry is dropped. edgeport
  writes nothing there; what exporters and optimizers write there is debug annotation (stack traces,
  FX node text, module scopes, rewrite-rule names, export signatures) that running the model never
  needs.
* **Model level** -- ``metadata_props`` and ``doc_string`` are where a model's author puts meaning
  (edgeport's own ``edgeport.*`` lineage, labels, licences): kept, except keys in the exporters'
  debug namespaces (``pkg.torch.``, ``pkg.onnxscript.``) and any value that contains a file-system
  path (an absolute POSIX or Windows path, ``~/...`` or a ``file:`` URI). ``edgeport.*`` entries are
  always kept (edgeport writes hashes and specs there, never paths).
* Everything that defines the model is untouched: nodes, names, attributes, weights (external data
  references included), opsets, ``producer_name``/``producer_version`` (path-free and meaningful: the
  tool that wrote the file) and ONNX Runtime's ``onnx.infer``/``onnx.quant.pre_process`` markers.

What is left depends only on the model and on the versions of the tools that wrote it, not on
where the tools or the run folder live.

Where it runs: :func:`edgeport.exporter.write_onnx` scrubs every export right after torch.onnx writes
it (fp32 models and the torch backends' int8 models), and :func:`edgeport.exporter.write_metadata`,
the last write of every ONNX file edgeport ships (``edgeport run``, ``edgeport quantize``, search
trials), scrubs again whatever another tool wrote (ONNX Runtime's int8 models, a user's own fp32 file).
"""

from __future__ import annotations

import os
import re

import onnx
from google.protobuf.descriptor import FieldDescriptor

from edgeport.core.artifacts import atomic_write_bytes

KEEP_PREFIX = "edgeport."
DEBUG_PREFIXES = ("pkg.torch.", "pkg.onnxscript.")

# An absolute POSIX path with at least two components (/home/u, /tmp/x), a Windows drive or UNC path,
# a home-relative path or a file: URI, at the start of the value or after a separator.
_PATH = re.compile(
    r"""(?:^|[\s"'`(\[{=,:;])(?:/[^/\s"'`]+/[^/\s"'`]|~[/\\]|[A-Za-z]:[\\/]|\\\\[^\\\s]+\\)"""
    r"""|file:/""",
    re.IGNORECASE,
)


def looks_like_path(value: str) -> bool:
    """Whether ``value`` contains something that reads as a file-system location."""
    return bool(_PATH.search(value))


def _keep_model_prop(key: str, value: str) -> bool:
    if key.startswith(KEEP_PREFIX):
        return True
    return not key.startswith(DEBUG_PREFIXES) and not looks_like_path(key) and not looks_like_path(value)


def _is_repeated(field: FieldDescriptor) -> bool:
    # protobuf >= 5 has is_repeated (and 7 dropped label); older versions only have label.
    repeated = getattr(field, "is_repeated", None)
    return repeated if repeated is not None else field.label == FieldDescriptor.LABEL_REPEATED


def _children(message):
    """The messages directly under ``message`` (metadata entries excluded).

    Only message-typed fields are visited, so tensors' raw_data is never copied.
    """
    for field in message.DESCRIPTOR.fields:
        if field.type != FieldDescriptor.TYPE_MESSAGE or field.name == "metadata_props":
            continue
        if _is_repeated(field):
            yield from getattr(message, field.name)
        elif message.HasField(field.name):
            yield getattr(message, field.name)


def _scrub_below(message) -> int:
    """Clear doc_string and metadata_props in ``message`` and every message under it; count what went."""
    removed = 0
    fields = message.DESCRIPTOR.fields_by_name
    if "doc_string" in fields and message.doc_string:
        message.ClearField("doc_string")
        removed += 1
    if "metadata_props" in fields and len(message.metadata_props):
        removed += len(message.metadata_props)
        message.ClearField("metadata_props")
    for child in _children(message):
        removed += _scrub_below(child)
    return removed


def scrub_model(model: onnx.ModelProto) -> int:
    """Apply the module's rule to ``model`` in place; return how many entries were removed."""
    removed = 0
    if model.doc_string and looks_like_path(model.doc_string):
        model.ClearField("doc_string")
        removed += 1
    kept = [(p.key, p.value) for p in model.metadata_props if _keep_model_prop(p.key, p.value)]
    if len(kept) != len(model.metadata_props):
        removed += len(model.metadata_props) - len(kept)
        del model.metadata_props[:]
        for key, value in kept:
            model.metadata_props.add(key=key, value=value)
    for child in _children(model):
        removed += _scrub_below(child)
    return removed


def save_atomic(model: onnx.ModelProto, path: str | os.PathLike) -> None:
    """Write ``model`` to ``path`` through a temporary file in the same folder, then rename it into place.

    Weights stored as external data stay where they are (their references are relative to the folder).
    """
    atomic_write_bytes(path, model.SerializeToString())


def scrub_onnx(path: str | os.PathLike) -> int:
    """Scrub the ONNX file at ``path`` in place (atomically); return how many entries were removed.

    The file is rewritten only when something was removed. Call it on every ONNX file edgeport
    ships, after the last step that writes the file from another tool's model.
    """
    model = onnx.load(str(path), load_external_data=False)
    removed = scrub_model(model)
    if removed:
        save_atomic(model, path)
    return removed
