"""Which reported codes matter, and what role each plays in computing an ANC.

LOINC codes are built in; site-specific (local) codes come from configuration through
:meth:`CodeMap.from_mapping`. A code in neither table is ignored, never guessed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping

ROLES = frozenset({
    "anc_direct", "anc_segmented", "bands_absolute", "neutrophils_percent", "bands_percent",
    "neutrophils_fraction", "wbc", "body_temperature",
})

LOINC_ROLES: Mapping[str, str] = MappingProxyType({
    "751-8": "anc_direct", "26499-4": "anc_direct", "753-4": "anc_direct",
    "30451-9": "anc_segmented",
    "30229-9": "bands_absolute", "26507-4": "bands_absolute",
    "770-8": "neutrophils_percent", "26511-6": "neutrophils_percent",
    "26505-8": "neutrophils_percent", "23761-0": "neutrophils_percent",
    "35332-6": "bands_percent", "26508-2": "bands_percent",
    "71676-1": "neutrophils_fraction",
    "6690-2": "wbc", "26464-8": "wbc", "804-5": "wbc",
    "8310-5": "body_temperature",
})

LOINC_SYSTEMS = frozenset({"ln", "loinc", "http://loinc.org", "urn:oid:2.16.840.1.113883.6.1",
                           "2.16.840.1.113883.6.1"})
_LOINC_SHAPE = re.compile(r"^\d{1,7}-\d$")


def normalise_system(system: str | None) -> str | None:
    """Case-folded system; every LOINC alias becomes ``"http://loinc.org"``; blank is None."""
    if system is None or not system.strip():
        return None
    text = system.strip().lower()
    return "http://loinc.org" if text in LOINC_SYSTEMS else text


def is_loinc(system: str | None, code: str) -> bool:
    """A LOINC system, or no system and a LOINC-shaped code such as ``751-8``."""
    norm = normalise_system(system)
    if norm is None:
        return bool(_LOINC_SHAPE.match(code))
    return norm == "http://loinc.org"


@dataclass(frozen=True)
class CodeMap:
    """(system, code) -> role. Local entries are checked first, then LOINC."""

    local: Mapping[tuple[str | None, str], str] = field(default_factory=dict)

    def role_for(self, system: str | None, code: str | None) -> str | None:
        if code is None or not code.strip():
            return None
        code = code.strip()
        norm = normalise_system(system)
        role = self.local.get((norm, code))
        if role is None:
            role = self.local.get((None, code))
        if role is None and is_loinc(system, code):
            role = LOINC_ROLES.get(code)
        return role

    def first_role(self, codings: Iterable[tuple[str | None, str | None]]) -> tuple[str, int] | None:
        """The role of the first mapped (system, code) pair and its index, or None."""
        for index, (system, code) in enumerate(codings):
            role = self.role_for(system, code)
            if role is not None:
                return role, index
        return None

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any] | None) -> "CodeMap":
        """Build from the parsed YAML shape ``{"local_codes": [{"code", "system"?, "role"}]}``."""
        if config is None:
            return cls()
        if not isinstance(config, Mapping):
            raise ValueError("code map configuration must be a mapping with a 'local_codes' list")
        entries = config.get("local_codes") or []
        if not isinstance(entries, list):
            raise ValueError("'local_codes' must be a list of {code, system, role} entries")
        local: dict[tuple[str | None, str], str] = {}
        for index, entry in enumerate(entries):
            where = f"local_codes[{index}]"
            if not isinstance(entry, Mapping):
                raise ValueError(f"{where} must be a mapping with 'code' and 'role'")
            code, role, system = entry.get("code"), entry.get("role"), entry.get("system")
            if not isinstance(code, str) or not code.strip():
                raise ValueError(f"{where}.code must be a non-empty string")
            if role not in ROLES:
                raise ValueError(f"{where}.role {role!r} is not one of {', '.join(sorted(ROLES))}")
            if system is not None and not isinstance(system, str):
                raise ValueError(f"{where}.system must be a string when given")
            local[(normalise_system(system), code.strip())] = role
        return cls(local=MappingProxyType(local))


DEFAULT_CODES = CodeMap()

__all__ = ["CodeMap", "DEFAULT_CODES", "LOINC_ROLES", "ROLES", "is_loinc", "normalise_system"]
