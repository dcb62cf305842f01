"""The devices file of a device pool (``--pool devices.toml``): one table per device, strict.

```toml
[devices.rpi5-a]
url = "ssh://pi@10.0.0.21"
python = "/home/pi/venv/bin/python"         # default: python3
ssh_options = ["IdentityFile=~/.ssh/lab"]   # the same allowlist as --ssh-option
runtimes = ["ort"]                          # what the device can run: ort, openvino (default: ort)
tags = { arch = "aarch64", board = "rpi5" }
```

A command measures on the devices whose tags hold every ``--tags KEY=VALUE`` it is given and which have
the runtime it needs. Those devices must be of one kind (the same tags): a command ranks or compares
latencies, and latencies of two kinds of board are not comparable. Devices of one kind stand in for each
other: when one fails, its work goes to another.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgeport.benchmarks.ssh_device import RemoteDevice
from edgeport.core.json_files import refuse_special_file
from edgeport.core.project_file import read_project_file, validation_message
from edgeport.errors import ConfigError

# A device's name becomes the name of its Ray resource and appears in every result measured on it.
DEVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TAG_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


Runtime = Literal["ort", "openvino"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DeviceEntry(_Strict):
    """One [devices.NAME] table as written."""

    url: str
    python: str = "python3"
    ssh_options: list[str] = []
    runtimes: list[Runtime] = Field(default_factory=lambda: list[Runtime](["ort"]), min_length=1)
    tags: dict[str, str] = {}

    @field_validator("tags")
    @classmethod
    def _plain_tags(cls, tags: dict[str, str]) -> dict[str, str]:
        for key, value in tags.items():
            for word in (key, value):
                if not _TAG_WORD.match(word):
                    raise ValueError(f"tag {key}={value!r}: keys and values are letters, digits, '.', '_' and '-'")
        return tags


class DevicesFile(_Strict):
    devices: dict[str, DeviceEntry] = {}  # none: refused below with the table to add


@dataclass(frozen=True)
class PoolDevice:
    """A device of the pool: its name, how to reach it, what it runs and its tags."""

    name: str
    remote: RemoteDevice
    runtimes: tuple[str, ...] = ("ort",)
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(self.tags.items()))


@dataclass(frozen=True)
class PoolChoice:
    """``--pool FILE [--tags KEY=VALUE ...] [--ray-address ADDRESS]``: where a command measures."""

    devices_file: str
    tags: Mapping[str, str] = field(default_factory=dict)
    ray_address: str | None = None

    def describe(self) -> str:
        tags = ",".join(f"{k}={v}" for k, v in self.tags.items())
        return f"pool {self.devices_file}" + (f" ({tags})" if tags else "")


def load_devices(path: str | Path) -> list[PoolDevice]:
    """Every device of the file, each checked (its URL and ssh options as --remote checks them)."""
    path = Path(path)
    refuse_special_file(path, "devices file")
    document = read_project_file(path, "devices file")
    try:
        entries = DevicesFile.model_validate(document).devices
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, str(path))) from exc
    if not entries:
        raise ConfigError(f"{path}: no devices; add a [devices.NAME] table with its url")
    devices = []
    for name, entry in entries.items():
        if not DEVICE_NAME.match(name):
            raise ConfigError(f"{path}: device name {name!r} may only hold letters, digits, '.', '_' and '-'")
        try:
            remote = RemoteDevice.parse(entry.url, entry.python, tuple(entry.ssh_options))
        except ConfigError as exc:
            raise ConfigError(f"{path}: field 'devices.{name}.url/python/ssh_options': {exc}") from exc
        devices.append(PoolDevice(name, remote, tuple(entry.runtimes), dict(entry.tags)))
    reached: dict[tuple, str] = {}
    for device in devices:  # two names for one device would run two measurements on it at once
        where = (device.remote.host, device.remote.port)
        if where in reached:
            same = f"devices {reached[where]!r} and {device.name!r}"
            raise ConfigError(f"{path}: {same} are one device, {device.remote.url}: name it once")
        reached[where] = device.name
    return devices


def parse_tags(texts: Iterable[str]) -> dict[str, str]:
    """``--tags board=rpi5,arch=aarch64`` (repeatable) as a dict; a key given twice must agree."""
    tags: dict[str, str] = {}
    for text in texts:
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, value = item.partition("=")
            if not sep or not _TAG_WORD.match(key) or not _TAG_WORD.match(value):
                raise ConfigError(f"--tags expects KEY=VALUE pairs such as board=rpi5, got {item!r}")
            if tags.get(key, value) != value:
                raise ConfigError(f"--tags gives {key} twice: {tags[key]!r} and {value!r}")
            tags[key] = value
    return tags


def _label(kind: tuple[tuple[str, str], ...]) -> str:
    return ",".join(f"{k}={v}" for k, v in kind) or "no tags"


def select_devices(
    devices: list[PoolDevice], tags: Mapping[str, str], runtimes: Iterable[str], path: str | Path
) -> list[PoolDevice]:
    """The devices that match every tag and have every runtime, all of one kind; refused otherwise."""
    needed = set(runtimes)
    chosen = [d for d in devices if all(d.tags.get(k) == v for k, v in tags.items()) and needed <= set(d.runtimes)]
    asked = ", ".join(f"{k}={v}" for k, v in tags.items()) or "no --tags"
    if not chosen:
        raise ConfigError(
            f"{path}: no device has {asked} and the runtime(s) {', '.join(sorted(needed))}; the file has "
            + "; ".join(f"{d.name}: {_label(d.kind)}, runtimes {','.join(d.runtimes)}" for d in devices)
        )
    kinds: dict[tuple, list[str]] = {}
    for device in chosen:
        kinds.setdefault(device.kind, []).append(device.name)
    if len(kinds) > 1:
        found = "; ".join(f"{_label(kind)}: {', '.join(names)}" for kind, names in kinds.items())
        raise ConfigError(
            f"{path}: the devices with {asked} are of {len(kinds)} kinds ({found}); latencies of two kinds of "
            "device are not comparable: choose one kind with --tags"
        )
    return chosen
