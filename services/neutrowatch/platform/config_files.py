"""Loading the operator's configuration files (the only file I/O the domain's data needs)."""
from __future__ import annotations

from pathlib import Path

import yaml

from neutrowatch.domain.codes import CodeMap


def load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SystemExit(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: expected a mapping at the top level")
    return data


def load_code_map(path: Path | None) -> CodeMap:
    if path is None:
        return CodeMap.from_mapping({})
    try:
        return CodeMap.from_mapping(load_yaml(path))
    except ValueError as exc:
        raise SystemExit(f"{path}: {exc}") from exc
