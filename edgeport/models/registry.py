"""Model registry and model specs.

A model is named by a spec string: ``cnn`` or ``cnn:width=2,depth=4`` for a
registered architecture, or ``module:factory`` / ``package.module:factory`` (optionally
followed by ``:key=value,...``) for a user's own factory, importable from the working
folder or the Python path. Factories are called with the
dataset's ``in_channels``, ``num_classes`` and ``image_size`` plus the spec's
options, and must return a ``torch.nn.Module``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from edgeport.errors import ModelError
from edgeport.registry import Registry

Factory = Callable[..., nn.Module]
MODELS: Registry = Registry("model")
register_model = MODELS.register


def list_models() -> list[str]:
    _load_builtin_models()
    return sorted(MODELS)


def _load_builtin_models() -> None:
    # Imported for their @register_model side effect.
    from edgeport.models import cnn, resnet_cifar, torchvision_models  # noqa: F401


def _parse_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _parse_options(text: str, spec: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ModelError(f"model spec {spec!r}: option {item!r} is not key=value")
        options[key.strip()] = _parse_value(value.strip())
    return options


@dataclass(frozen=True)
class ModelSpec:
    """A model architecture and its options, parsed from ``name[:k=v,...]`` or ``pkg.mod:factory[:k=v]``."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> ModelSpec:
        spec = spec.strip()
        if not spec:
            raise ModelError("model spec is empty; expected a name such as 'cnn' or 'pkg.module:factory'")
        parts = spec.split(":")
        # The grammar: `name[:k=v,...]` for a registered model, `module:factory[:k=v,...]` for a user's
        # factory. What follows the first colon tells them apart: options always hold '=', a factory
        # is a Python name. So `mymodel:build` (a top-level module) and `pkg.mod:build` are factories.
        is_factory = len(parts) > 1 and parts[1].isidentifier()
        if "." in parts[0] and not is_factory:
            raise ModelError(
                f"model spec {spec!r}: a user model is written 'module:factory' or 'package.module:factory'"
            )
        if is_factory:
            if not all(piece.isidentifier() for piece in parts[0].split(".")):
                raise ModelError(f"model spec {spec!r}: {parts[0]!r} is not an importable module name")
            options = _parse_options(":".join(parts[2:]), spec) if len(parts) > 2 else {}
            return cls(f"{parts[0]}:{parts[1]}", options)
        options = _parse_options(":".join(parts[1:]), spec) if len(parts) > 1 else {}
        return cls(parts[0], options)

    @property
    def is_user_factory(self) -> bool:
        return ":" in self.name

    def __str__(self) -> str:
        if not self.options:
            return self.name
        opts = ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.name}:{opts}"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "options": dict(sorted(self.options.items()))}

    def validate(self) -> None:
        """Check the name resolves and the options are accepted, without building the model."""
        _check_options(self, _resolve(self))


def _import_user_module(name: str):
    """Import ``name`` as Python would from the user's folder: the ``edgeport`` console script's
    sys.path starts at its own bin folder, not at the working folder where a mymodel.py sits."""
    cwd = os.getcwd()
    if cwd in sys.path or "" in sys.path:
        return importlib.import_module(name)
    sys.path.append(cwd)  # last: a module in the working folder never shadows an installed one
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(cwd)


def _resolve(spec: ModelSpec) -> Factory:
    if spec.is_user_factory:
        module_name, _, attr = spec.name.partition(":")
        try:
            module = _import_user_module(module_name)
        except ImportError as exc:
            _load_builtin_models()
            if module_name in MODELS:
                raise ModelError(
                    f"model {spec.name!r}: {module_name!r} is a registered model, whose options are "
                    f"written key=value ('{module_name}:{attr}=...'); no module {module_name!r} to "
                    "import a factory from"
                ) from exc
            raise ModelError(f"model {spec.name!r}: cannot import module {module_name!r} ({exc})") from exc
        factory = getattr(module, attr, None)
        if factory is None or not callable(factory):
            raise ModelError(f"model {spec.name!r}: module {module_name!r} has no callable {attr!r}")
        return factory
    _load_builtin_models()
    if spec.name not in MODELS:
        raise ModelError(
            f"unknown model {spec.name!r}; expected one of {', '.join(sorted(MODELS))} or 'module:factory'"
        )
    return MODELS[spec.name]


_DATA_ARGS = ("in_channels", "num_classes", "image_size")


def _check_options(spec: ModelSpec, factory: Factory) -> inspect.Signature | None:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    params = signature.parameters
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in spec.options if k not in params and not takes_kwargs]
    if unknown:
        allowed = [k for k in params if k not in _DATA_ARGS]
        raise ModelError(
            f"model {spec.name!r}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(allowed) or 'none'}"
        )
    return signature


def build_model(
    spec: ModelSpec | str, in_channels: int | None, num_classes: int | None, image_size: int | None
) -> nn.Module:
    """Instantiate a model for a dataset with ``in_channels`` channels and ``num_classes`` classes."""
    if isinstance(spec, str):
        spec = ModelSpec.parse(spec)
    factory = _resolve(spec)
    signature = _check_options(spec, factory)
    data_args = {
        k: v
        for k, v in (("in_channels", in_channels), ("num_classes", num_classes), ("image_size", image_size))
        if v is not None
    }
    if signature is not None and not any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()
    ):
        data_args = {k: v for k, v in data_args.items() if k in signature.parameters}
    try:
        model = factory(**data_args, **spec.options)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"model {str(spec)!r}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ModelError(f"model {spec.name!r}: factory returned {type(model).__name__}, expected torch.nn.Module")
    return model
