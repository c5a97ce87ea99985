"""The old names of settings, still read, each with a warning naming the new one.

pydantic-settings reads only the names of fields from the environment, so ``DeprecatedNames`` reads the
old ones; ``apply_deprecated`` then moves their values to the fields that replaced them.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource

log = logging.getLogger("ragstream.config")

#: Qdrant's own names of what every server store calls RAGSTREAM_INDEX_URL and RAGSTREAM_INDEX_API_KEY.
#: They apply where they did before, to the store qdrant (RAGSTREAM_INDEX=qdrant, or unset: a Qdrant URL
#: chose qdrant), and there the old name wins over the new, as it did ("RAGSTREAM_QDRANT_URL first").
RENAMED = {
    "qdrant_url": "index_url",
    "qdrant_api_key": "index_api_key",
    "qdrant_api_key_parameter": "index_api_key_parameter",
}
#: RAGSTREAM_LOCAL_INDEX's values, as RAGSTREAM_INDEX says them.
LOCAL_INDEX = {"edge": "edge", "qdrant-local": "qdrant"}
#: Every old name (a settings key; its environment name is RAGSTREAM_ and it in capitals).
DEPRECATED = (*RENAMED, "local_index")


def env_name(field: str) -> str:
    return f"RAGSTREAM_{field.upper()}"


class DeprecatedNames(PydanticBaseSettingsSource):
    """The old names found in the environment (case-insensitive, as pydantic-settings reads the others)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # no field of its own: __call__ reads the old names

    def __call__(self) -> dict[str, Any]:
        environ = {key.upper(): value for key, value in os.environ.items()}
        return {old: environ[env_name(old)] for old in DEPRECATED if env_name(old) in environ}


def _warn(old: str, new: str) -> None:
    message = f"{env_name(old)} is deprecated: use {new}"
    warnings.warn(message, DeprecationWarning, stacklevel=2)
    log.warning(message)


def apply_deprecated(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a settings input) with the old names' values moved to the fields that replaced them."""
    given = {name: data.pop(name) for name in DEPRECATED if name in data}
    given = {name: value for name, value in given.items() if value not in (None, "")}
    if "qdrant_url" in given and data.get("index") is None:
        data["index"] = "qdrant"  # a Qdrant URL chose the store qdrant
    if "local_index" in given:
        _warn("local_index", "RAGSTREAM_INDEX (edge, or qdrant without a URL)")
        if given["local_index"] not in LOCAL_INDEX:
            raise ValueError(f"RAGSTREAM_LOCAL_INDEX must be one of {', '.join(LOCAL_INDEX)}")
        if data.get("index") is None:
            data["index"] = LOCAL_INDEX[given["local_index"]]
    for old, new in RENAMED.items():
        if old in given:
            _warn(old, env_name(new))
            if data.get("index") == "qdrant":  # another store never read Qdrant's names
                data[new] = given[old]
    return data
