"""Settings from TOML files and command lines onto frozen dataclasses, checked in one place.

Unknown keys are errors (a typo never leaves a default silently in force), and each value
must have its default's type; list settings take one string or a list of strings.
"""

from __future__ import annotations

import tomllib
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bitswarm.errors import UsageError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Settings = TypeVar("Settings", bound="DataclassInstance")


def read_toml(text: str, *, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{source}: {error}") from None


def apply_settings(config: Settings, settings: dict[str, Any], *, source: str) -> Settings:
    """``config`` with ``settings`` applied; a tuple-of-strings field takes a string or a list."""
    defaults = type(config)()
    known = {item.name for item in fields(config)}
    changes: dict[str, Any] = {}
    for key, given in settings.items():
        value = given
        name = key.replace("-", "_")
        if name not in known:
            raise UsageError(f"{source}: unknown setting {key!r}")
        default = getattr(defaults, name)
        if isinstance(default, tuple):
            value = (value,) if isinstance(value, str) else value
            if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
                raise UsageError(f"{source}: {key} must be a string or a list of strings")
            value = tuple(item for item in value if item)
        elif isinstance(default, bool) and not isinstance(value, bool):
            raise UsageError(f"{source}: {key} must be true or false")
        elif isinstance(default, int | float) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise UsageError(f"{source}: {key} must be a number")
            value = type(default)(value)
        elif (default is None or isinstance(default, str)) and not isinstance(value, str):
            raise UsageError(f"{source}: {key} must be a string")
        changes[name] = value
    return replace(config, **changes)


def load_settings(defaults: Settings, path: Path | None, overrides: dict[str, object]) -> Settings:
    """``defaults``, then the TOML file at ``path``, then ``overrides`` (None values ignored);
    raises UsageError naming the file and the key. The caller validates the result."""
    config = defaults
    if path is not None:
        try:
            text = path.read_text("utf-8")
        except OSError as error:
            raise UsageError(f"{path}: {error.strerror}") from None
        config = apply_settings(config, read_toml(text, source=str(path)), source=str(path))
    given = {key: value for key, value in overrides.items() if value is not None}
    return apply_settings(config, given, source="options")
