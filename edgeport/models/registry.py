"""Model registry and model specs.

A model is named by a spec string: ``cnn`` or ``cnn:width=2,depth=4`` for a
registered architecture, or ``module:factory`` / ``package.module:factory`` (optionally
followed by ``:key=value,...``) for a user's own factory, importable from the working
folder or the Python path. Factories are called with the
dataset's ``in_channels``, ``num_classes`` and ``image_size`` plus the spec's
options, and must return a ``torch.nn.Module``.

A spec arrives from options, project files and search folders, so it must never reach code that is
not a model (``os:system:command=...``). The trust model: a user factory lives in the user's own
code, found on the path WITHOUT importing it (importing ``antigravity`` already runs code), never in
Python's standard library, an installed package (site-packages; installed model libraries are
reached through the registered names or a two-line factory of the user's) or edgeport itself; and
after import it must be a Python function or an ``nn.Module`` class defined in that code.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import site
import sys
import sysconfig
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from edgeport.core.registry import Registry
from edgeport.errors import ModelError

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


@contextmanager
def _user_path() -> Iterator[None]:
    """Find and import as Python would from the user's folder: the ``edgeport`` console script's
    sys.path starts at its own bin folder, not at the working folder where a mymodel.py sits."""
    cwd = os.getcwd()
    if cwd in sys.path or "" in sys.path:
        yield
        return
    sys.path.append(cwd)  # last: a module in the working folder never shadows an installed one
    try:
        yield
    finally:
        sys.path.remove(cwd)


def _installed_roots() -> list[Path]:
    """Folders of the Python installation: the standard library and every site-packages."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    folders = [Path(prefix) / "lib" for prefix in roots] + [Path(prefix) / "lib64" for prefix in roots]
    for scheme_vars in ({}, {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}):
        paths = sysconfig.get_paths(vars=scheme_vars)
        folders += [Path(paths[key]) for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths]
    folders += [Path(p) for p in site.getsitepackages()] + [Path(site.getusersitepackages())]
    return [folder.resolve() for folder in folders]


def _foreign_code(location: str) -> str | None:
    """Why a module file (or package folder) at ``location`` is not the user's own code, or None."""
    path = Path(location).resolve()
    if {"site-packages", "dist-packages"} & set(path.parts):
        return "an installed package (site-packages)"
    if any(path.is_relative_to(root) for root in _installed_roots()):
        return "part of the Python installation"
    if path.is_relative_to(Path(__file__).resolve().parents[1]):
        return "edgeport's own code"
    return None


def _module_locations(found) -> list[str]:
    if found.has_location and found.origin:
        return [found.origin]
    return list(found.submodule_search_locations or [])  # a namespace package: its folders


def _check_top_level(spec_name: str, module_name: str) -> None:
    """Refuse, before anything is imported, a module that is not the user's own code."""
    top = module_name.partition(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        raise ModelError(
            f"model spec {spec_name!r}: {top!r} is a module of Python's standard library, not a model; "
            "a spec names a registered model (edgeport list) or a factory in your own module"
        )
    try:
        found = importlib.util.find_spec(top)  # a top-level name: finds the file, runs nothing
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise ModuleNotFoundError(f"No module named {top!r}", name=top)
    locations = _module_locations(found)
    why = "built into Python" if not locations else next(filter(None, map(_foreign_code, locations)), None)
    if why:
        raise ModelError(
            f"model spec {spec_name!r}: module {top!r} is {why}, not your own code; "
            "a spec names a registered model (edgeport list) or a factory in your own module"
        )


def _import_user_module(spec_name: str, name: str):
    with _user_path():
        _check_top_level(spec_name, name)
        return importlib.import_module(name)


def _check_factory(spec_name: str, module, attr: str) -> Factory:
    """The factory must be model-building code of the user's module: a Python function or an
    ``nn.Module`` class defined there, never a builtin, a partial or a function imported from elsewhere."""
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise ModelError(f"model {spec_name!r}: module {module.__name__!r} has no callable {attr!r}")
    if inspect.isclass(factory):
        if not issubclass(factory, nn.Module):
            raise ModelError(f"model {spec_name!r}: {attr!r} is a class that is not a torch.nn.Module")
    elif not inspect.isfunction(factory):
        raise ModelError(
            f"model {spec_name!r}: {attr!r} is a {type(factory).__name__}, not a Python function or "
            "torch.nn.Module class"
        )
    defined_in = getattr(factory, "__module__", None) or ""
    if defined_in != module.__name__ and not defined_in.startswith(module.__name__ + "."):
        raise ModelError(
            f"model {spec_name!r}: {attr!r} is defined in {defined_in!r}, not in {module.__name__!r}; "
            "name the module of your code that defines the factory"
        )
    origin = getattr(sys.modules.get(defined_in), "__file__", None)
    why = _foreign_code(origin) if origin else "not loaded from a file"
    if why:
        raise ModelError(f"model {spec_name!r}: {defined_in!r} is {why}, not your own code")
    return factory


def _resolve_user_factory(spec: ModelSpec) -> Factory:
    module_name, _, attr = spec.name.partition(":")
    try:
        module = _import_user_module(spec.name, module_name)
    except ImportError as exc:
        _load_builtin_models()
        if module_name in MODELS:
            raise ModelError(
                f"model {spec.name!r}: {module_name!r} is a registered model, whose options are "
                f"written key=value ('{module_name}:{attr}=...'); no module {module_name!r} to "
                "import a factory from"
            ) from exc
        raise ModelError(f"model {spec.name!r}: cannot import module {module_name!r} ({exc})") from exc
    except ModelError:
        raise
    except Exception as exc:  # the user's module failed while importing: one line, not a traceback
        raise ModelError(
            f"model {spec.name!r}: importing {module_name!r} failed ({type(exc).__name__}: {exc})"
        ) from exc
    return _check_factory(spec.name, module, attr)


def _resolve(spec: ModelSpec) -> Factory:
    if spec.is_user_factory:
        return _resolve_user_factory(spec)
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
