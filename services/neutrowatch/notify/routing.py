"""The routing tree (Alertmanager-like), loaded from YAML and validated at load: every problem is
reported with its line. Pure: no I/O except reading the file in ``load``.

A route matches when every matcher it lists holds (a field's value is in the listed values).
Children are tried in order; the first match wins unless it sets ``continue: true``; when no child
matches, the parent itself is the match. Children inherit receiver, group_wait and escalation.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

MATCH_FIELDS = ("kind", "severity", "patient_key", "ward", "service")
RECEIVER_TYPES = {"email": {"to"}, "webhook": {"url", "secret_env", "secret_file", "timeout_seconds"},
                  "apprise": {"urls", "urls_env"}}
DEFAULT_ESCALATION_DELAY = 1800.0
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class RoutingError(ValueError):
    """A routing file problem; ``line`` is 1-based (0 when the file could not be read)."""

    def __init__(self, source: str, line: int, problem: str):
        super().__init__(f"{source}:{line}: {problem}" if line else f"{source}: {problem}")
        self.source, self.line, self.problem = source, line, problem


@dataclass(frozen=True)
class Receiver:
    name: str
    type: str  # email | webhook | apprise
    options: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Escalation:
    receivers: tuple[str, ...]
    delay_seconds: float = DEFAULT_ESCALATION_DELAY
    max_repeats: int = 0

    @property
    def levels(self) -> int:
        """Escalation notifications after the first one: the chain, repeated ``max_repeats`` times."""
        return len(self.receivers) * (1 + self.max_repeats)

    def receiver_at(self, level: int) -> str:
        return self.receivers[(level - 1) % len(self.receivers)]

    def to_dict(self) -> dict:
        return {"receivers": list(self.receivers), "delay_seconds": self.delay_seconds,
                "max_repeats": self.max_repeats}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Escalation | None":
        return None if d is None else cls(tuple(d["receivers"]), d["delay_seconds"], d["max_repeats"])


@dataclass(frozen=True)
class Route:
    receiver: str
    matchers: tuple[tuple[str, frozenset[str]], ...] = ()
    continue_: bool = False
    group_wait_seconds: float = 0.0
    escalation: Escalation | None = None
    routes: tuple["Route", ...] = ()
    line: int = 0


@dataclass(frozen=True)
class Routing:
    route: Route
    receivers: Mapping[str, Receiver]
    fallback_receiver: str | None = None
    inhibit_window_seconds: float = 24 * 3600.0


@dataclass(frozen=True)
class Target:
    """One receiver an alert goes to, with the route's timing."""
    receiver: str
    group_wait_seconds: float
    escalation: Escalation | None
    route_line: int


# ----------------------------------------------------------------------------- matching

def alert_field(alert: Mapping[str, Any], name: str) -> str | None:
    """A matchable value of an alert record; ward/service come from an optional location."""
    if name in ("ward", "service"):
        loc = alert.get("location") or (alert.get("evidence") or {}).get("location") or {}
        value = loc.get(name) if isinstance(loc, Mapping) else None
    else:
        value = alert.get(name)
    return None if value is None else str(value)


def matches(matchers, alert: Mapping[str, Any]) -> bool:
    return all(alert_field(alert, name) in values for name, values in matchers)


def targets(routing: Routing, alert: Mapping[str, Any]) -> list[Target]:
    """Receivers of an alert, first match first, each receiver once."""
    found: list[Target] = []
    for route in _walk(routing.route, alert):
        if all(t.receiver != route.receiver for t in found):
            found.append(Target(route.receiver, route.group_wait_seconds, route.escalation, route.line))
    return found


def _walk(route: Route, alert) -> list[Route]:
    hits: list[Route] = []
    for child in route.routes:
        if matches(child.matchers, alert):
            hits.extend(_walk(child, alert))
            if not child.continue_:
                break
    return hits or [route]


# ----------------------------------------------------------------------------- loading

def load(path: Path | str) -> Routing:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RoutingError(source, 0, f"cannot read the routing file: {exc.strerror}") from exc
    return parse(text, source)


def parse(text: str, source: str = "<routing>") -> Routing:
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise RoutingError(source, mark.line + 1 if mark else 0,
                           f"not valid YAML: {getattr(exc, 'problem', None) or exc}") from exc
    return _Loader(source).routing(root)


class _Loader:
    def __init__(self, source: str):
        self.source = source
        self.receiver_refs: list[tuple[str, yaml.Node]] = []

    def fail(self, node: yaml.Node | None, problem: str):
        raise RoutingError(self.source, node.start_mark.line + 1 if node is not None else 0, problem)

    def mapping(self, node, what: str, allowed: set[str], required: set[str] = frozenset()):
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, f"{what} must be a mapping")
        out: dict[str, yaml.Node] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if name not in allowed:
                self.fail(key, f"unknown key {name!r} in {what} (allowed: {', '.join(sorted(allowed))})")
            if name in out:
                self.fail(key, f"duplicate key {name!r} in {what}")
            out[name] = value
        for name in sorted(required - out.keys()):
            self.fail(node, f"{what} is missing {name!r}")
        return out

    def string(self, node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag.endswith((":null", ":map", ":seq")) \
                or not str(node.value).strip():
            self.fail(node, f"{what} must be a non-empty string")
        return str(node.value)

    def strings(self, node, what: str) -> list[str]:
        if isinstance(node, yaml.ScalarNode):
            return [self.string(node, what)]
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.fail(node, f"{what} must be a string or a non-empty list of strings")
        return [self.string(item, what) for item in node.value]

    def seconds(self, node, what: str) -> float:
        m = _DURATION.match(str(node.value)) if isinstance(node, yaml.ScalarNode) else None
        if not m:
            self.fail(node, f"{what} must be a duration (seconds, or e.g. 90s, 30m, 2h, 1d)")
        return float(m.group(1)) * _UNIT[m.group(2)]

    def integer(self, node, what: str) -> int:
        if not isinstance(node, yaml.ScalarNode) or not re.fullmatch(r"\d+", str(node.value)):
            self.fail(node, f"{what} must be a whole number >= 0")
        return int(node.value)

    def boolean(self, node, what: str) -> bool:
        if not isinstance(node, yaml.ScalarNode) or not node.tag.endswith(":bool"):
            self.fail(node, f"{what} must be true or false")
        return str(node.value).lower() in ("true", "yes", "on")

    def ref(self, node, what: str) -> str:
        name = self.string(node, what)
        self.receiver_refs.append((name, node))
        return name

    # --- sections
    def routing(self, root) -> Routing:
        if root is None:
            self.fail(None, "the routing file is empty")
        top = self.mapping(root, "the routing file", {"receivers", "route", "fallback_receiver", "inhibit"},
                           {"receivers", "route"})
        receivers = self.receivers(top["receivers"])
        route = self.route(top["route"], None, "route")
        fallback = self.ref(top["fallback_receiver"], "fallback_receiver") if "fallback_receiver" in top else None
        window = 24 * 3600.0
        if "inhibit" in top:
            inhibit = self.mapping(top["inhibit"], "inhibit", {"window"})
            window = self.seconds(inhibit["window"], "inhibit.window") if "window" in inhibit else window
        for name, node in self.receiver_refs:
            if name not in receivers:
                self.fail(node, f"unknown receiver {name!r} (defined: {', '.join(sorted(receivers))})")
        return Routing(route, receivers, fallback, window)

    def receivers(self, node) -> dict[str, Receiver]:
        if not isinstance(node, yaml.MappingNode) or not node.value:
            self.fail(node, "receivers must be a non-empty mapping of name -> receiver")
        out: dict[str, Receiver] = {}
        for key, value in node.value:
            name = self.string(key, "a receiver name")
            if name in out:
                self.fail(key, f"receiver {name!r} is defined twice")
            out[name] = self.receiver(name, value)
        return out

    def receiver(self, name: str, node) -> Receiver:
        what = f"receiver {name!r}"
        kind_node = self.mapping(node, what, {"type", *set().union(*RECEIVER_TYPES.values())}, {"type"})["type"]
        kind = self.string(kind_node, f"{what} type")
        if kind not in RECEIVER_TYPES:
            self.fail(kind_node, f"{what} has unknown type {kind!r} (one of: {', '.join(RECEIVER_TYPES)})")
        spec = self.mapping(node, f"{what} ({kind})", {"type", *RECEIVER_TYPES[kind]})
        opts: dict[str, Any] = {}
        if kind == "email":
            if "to" not in spec:
                self.fail(node, f"{what} (email) is missing 'to'")
            opts["to"] = self.strings(spec["to"], f"{what} to")
            for addr, item in zip(opts["to"], _items(spec["to"])):
                if not re.fullmatch(r"[^@\s]+@[^@\s]+", addr):
                    self.fail(item, f"{what}: {addr!r} is not an email address")
        elif kind == "webhook":
            if "url" not in spec:
                self.fail(node, f"{what} (webhook) is missing 'url'")
            opts["url"] = self.string(spec["url"], f"{what} url")
            if not re.match(r"https?://", opts["url"]):
                self.fail(spec["url"], f"{what} url must start with http:// or https://")
            if ("secret_env" in spec) == ("secret_file" in spec):
                self.fail(node, f"{what} (webhook) needs exactly one of 'secret_env' or 'secret_file'")
            for key in ("secret_env", "secret_file"):
                if key in spec:
                    opts[key] = self.string(spec[key], f"{what} {key}")
            if "timeout_seconds" in spec:
                opts["timeout_seconds"] = self.seconds(spec["timeout_seconds"], f"{what} timeout_seconds")
        else:
            if ("urls" in spec) == ("urls_env" in spec):
                self.fail(node, f"{what} (apprise) needs exactly one of 'urls' or 'urls_env'")
            if "urls" in spec:
                opts["urls"] = self.strings(spec["urls"], f"{what} urls")
            else:
                opts["urls_env"] = self.string(spec["urls_env"], f"{what} urls_env")
        return Receiver(name, kind, opts)

    def route(self, node, parent: Route | None, what: str) -> Route:
        allowed = {"receiver", "match", "continue", "group_wait", "escalation", "routes"}
        spec = self.mapping(node, what, allowed, {"receiver"} if parent is None else set())
        if parent is not None and "match" not in spec:
            self.fail(node, f"{what} needs 'match' (only the top-level route is the default)")
        if parent is None and ("match" in spec or "continue" in spec):
            self.fail(node, "the top-level route is the default route: no 'match' or 'continue'")
        matchers: list[tuple[str, frozenset[str]]] = []
        if "match" in spec:
            m = self.mapping(spec["match"], f"{what} match", set(MATCH_FIELDS))
            if not m:
                self.fail(spec["match"], f"{what} match is empty")
            for name, values in m.items():
                vals = self.strings(values, f"{what} match.{name}")
                if name == "severity":
                    for v, item in zip(vals, _items(values)):
                        if v not in ("info", "warning", "critical"):
                            self.fail(item, f"{what} match.severity: {v!r} is not info, warning or critical")
                if name == "kind":  # a misspelt kind would silently send that kind down the default route
                    kinds = alert_kinds()
                    for v, item in zip(vals, _items(values)):
                        if v == "alert_retracted":
                            self.fail(item, f"{what} match.kind: alert_retracted is never routed (retraction "
                                            "notices go to the receivers that were told about the alert)")
                        if v not in kinds:
                            self.fail(item, f"{what} match.kind: {v!r} is not an alert kind "
                                            f"(one of: {', '.join(k for k in kinds if k != 'alert_retracted')})")
                matchers.append((name, frozenset(vals)))
        route = Route(
            receiver=self.ref(spec["receiver"], f"{what} receiver") if "receiver" in spec else parent.receiver,
            matchers=tuple(matchers),
            continue_=self.boolean(spec["continue"], f"{what} continue") if "continue" in spec else False,
            group_wait_seconds=(self.seconds(spec["group_wait"], f"{what} group_wait") if "group_wait" in spec
                                else parent.group_wait_seconds if parent else 0.0),
            escalation=(self.escalation(spec["escalation"], what) if "escalation" in spec
                        else parent.escalation if parent else None),
            line=node.start_mark.line + 1)
        if "routes" in spec:
            children = spec["routes"]
            if not isinstance(children, yaml.SequenceNode):
                self.fail(children, f"{what} routes must be a list of routes")
            subs = tuple(self.route(c, route, f"{what}.routes[{i}]") for i, c in enumerate(children.value))
            route = Route(route.receiver, route.matchers, route.continue_, route.group_wait_seconds,
                          route.escalation, subs, route.line)
        return route

    def escalation(self, node, what: str) -> Escalation:
        spec = self.mapping(node, f"{what} escalation", {"receivers", "delay", "max_repeats"}, {"receivers"})
        receivers = tuple(self.ref(item, f"{what} escalation receiver") for item in _items(spec["receivers"]))
        if not receivers:
            self.fail(spec["receivers"], f"{what} escalation receivers must not be empty")
        delay = self.seconds(spec["delay"], f"{what} escalation delay") if "delay" in spec else DEFAULT_ESCALATION_DELAY
        if delay <= 0:
            self.fail(spec["delay"], f"{what} escalation delay must be > 0")
        repeats = self.integer(spec["max_repeats"], f"{what} escalation max_repeats") if "max_repeats" in spec else 0
        return Escalation(receivers, delay, repeats)


def alert_kinds() -> tuple[str, ...]:
    """The alert kinds of the alert record schema (schemas/alert.v1.schema.json)."""
    from neutrowatch import schemas
    return tuple(schemas._load("alert.v1")["properties"]["kind"]["enum"])


def _items(node) -> list:
    return node.value if isinstance(node, yaml.SequenceNode) else [node]
