"""FHIR Bundle plumbing: safe JSON access, reference resolution, and inherited context
(effective time and specimen) from a DiagnosticReport.result or a panel's hasMember."""
from __future__ import annotations

from typing import Any


def as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def ref_keys(reference: str) -> list[str]:
    """Keys a reference may be known by: the text itself and its trailing "Type/id"."""
    keys = [reference]
    parts = reference.rstrip("/").split("/")
    if len(parts) >= 2 and "/_history/" not in reference:
        keys.append("/".join(parts[-2:]))
    elif "/_history/" in reference:
        head = reference.split("/_history/")[0].split("/")
        if len(head) >= 2:
            keys.append("/".join(head[-2:]))
    return keys


class BundleIndex:
    """Resources of a Bundle by fullUrl and by "Type/id", and who lists each Observation."""

    def __init__(self, entries: list[tuple[int, dict, str | None]]):
        self.by_key: dict[str, dict] = {}
        self.parents: dict[int, list[dict]] = {}
        for _, resource, full_url in entries:
            if full_url:
                self.by_key.setdefault(full_url, resource)
            rtype, rid = as_str(resource.get("resourceType")), as_str(resource.get("id"))
            if rtype and rid:
                self.by_key.setdefault(f"{rtype}/{rid}", resource)
        for _, resource, _ in entries:
            links = []
            if resource.get("resourceType") == "DiagnosticReport":
                links = as_list(resource.get("result"))
            elif resource.get("resourceType") == "Observation":
                links = as_list(resource.get("hasMember"))
            for link in links:
                child = self.resolve(as_dict(link).get("reference"))
                if child is not None and child is not resource:
                    self.parents.setdefault(id(child), []).append(resource)

    def resolve(self, reference: Any) -> dict | None:
        text = as_str(reference)
        if text is None:
            return None
        for key in ref_keys(text):
            if key in self.by_key:
                return self.by_key[key]
        return None

    def ancestors(self, resource: dict) -> list[dict]:
        """Parents, grandparents, ... (breadth first, each once)."""
        seen, queue, result = {id(resource)}, list(self.parents.get(id(resource), [])), []
        while queue:
            parent = queue.pop(0)
            if id(parent) in seen:
                continue
            seen.add(id(parent))
            result.append(parent)
            queue.extend(self.parents.get(id(parent), []))
        return result


EMPTY_INDEX = BundleIndex([])

__all__ = ["BundleIndex", "EMPTY_INDEX", "as_dict", "as_list", "as_str", "ref_keys"]
