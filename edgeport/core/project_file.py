"""Reading a TOML project or budget file safely, and a validation error as one line.

Shared by the project file (``edgeport.config``), the search definition and the gate's budget
file, so every file a user writes fails the same way: one line naming the file and the field.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgeport.errors import ConfigError

# The custom error type of an option whose message already shows the value (quantization options).
ERROR_TYPE = "quant_option"


def validation_message(exc: ValidationError, source: str) -> str:
    """A pydantic error as one line naming the file or section, the field and what was expected."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "(top level)"
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    quiet = ("extra_forbidden", ERROR_TYPE)  # their messages already show the value
    shown = f" (got {err['input']!r})" if err["type"] not in quiet and "input" in err else ""
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{source}: field '{field}': {message}{shown}{more}"


# Deepest nesting a project or budget file may have ([search.space] values are about 4 deep): every later
# step (merging, validation, hashing) walks the document recursively, so depth is capped where it is read.
MAX_TOML_DEPTH = 32


def read_project_file(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """The parsed TOML document, or a ConfigError naming the file."""
    path = Path(path)
    too_deep = f"{path}: {what} nests tables or arrays more than {MAX_TOML_DEPTH} levels deep; no setting needs that"
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: {what} not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    except RecursionError as exc:  # tomllib parses nested arrays and inline tables recursively
        raise ConfigError(too_deep) from exc
    if _nesting_depth(document) > MAX_TOML_DEPTH:
        raise ConfigError(too_deep)
    return document


def _nesting_depth(document: Any) -> int:
    """How deeply tables and arrays nest (without recursion: the document may be thousands deep)."""
    deepest, pending = 0, [(document, 1)]
    while pending:
        value, depth = pending.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > MAX_TOML_DEPTH:
                    return depth + 1
                pending.append((child, depth + 1))
        deepest = max(deepest, depth)
    return deepest
