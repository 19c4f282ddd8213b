"""The `neutrowatch` command. Options of the service commands are generated from
neutrowatch.platform.settings.Settings, so every setting shows in --help with its variable."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Callable

from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsError

from neutrowatch.platform.settings import Settings

ALIASES = {"kafka_bootstrap": ["--kafka"], "redis_url": ["--redis"]}


def _secret_fields() -> list[str]:
    return [n for n, f in Settings.model_fields.items() if f.annotation in (SecretStr, SecretStr | None)]


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (each also from its NEUTROWATCH_ variable)")
    for name, field in Settings.model_fields.items():
        if name in _secret_fields():
            continue
        env = f"NEUTROWATCH_{name.upper()}"
        flags = [f"--{name.replace('_', '-')}", *ALIASES.get(name, [])]
        help_text = f"{field.description} [{env}; default: {field.default}]"
        if field.annotation is bool:
            group.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction,
                               default=None, help=help_text)
        else:
            group.add_argument(*flags, dest=name, default=None, metavar=name.split("_")[-1].upper(),
                               help=help_text)
    parser.epilog = ("Secrets are read only from the environment or files, never from the command "
                     "line: " + ", ".join(f"NEUTROWATCH_{n.upper()}" for n in _secret_fields()) + ".")


def settings_from(args: argparse.Namespace) -> Settings:
    given = {n: getattr(args, n) for n in Settings.model_fields if getattr(args, n, None) is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(f"--{'-'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise SystemExit(f"neutrowatch: invalid setting: {problems}") from exc
    except SettingsError as exc:  # an environment variable that should hold JSON does not
        raise SystemExit(f"neutrowatch: invalid setting: {exc}") from exc


def _up(args: argparse.Namespace) -> int:
    from neutrowatch import up
    return up.run(settings_from(args))


def _monitor(args: argparse.Namespace) -> int:
    from neutrowatch.monitor import worker
    return worker.run(settings_from(args))


def _notify(args: argparse.Namespace) -> int:
    from neutrowatch.notify import service
    return service.run(settings_from(args))


def _demo(args: argparse.Namespace) -> int:
    from neutrowatch import demo
    return demo.run(settings_from(args), args)


def _topics_create(args: argparse.Namespace) -> int:
    from neutrowatch.platform.kafka import ensure_topics
    settings = settings_from(args)
    if not settings.kafka_bootstrap:
        raise SystemExit("neutrowatch topics create: give --kafka or NEUTROWATCH_KAFKA_BOOTSTRAP")
    created = ensure_topics(settings)
    print("created: " + (", ".join(created) if created else "nothing (all topics exist)"))
    return 0


def _doctor(_args: argparse.Namespace) -> int:
    from neutrowatch.platform.embedded import EmbeddedServerError, tansu_binary
    import shutil
    try:
        print(f"tansu broker: {tansu_binary()}")
    except EmbeddedServerError as exc:
        print(f"tansu broker: MISSING ({exc})")
        return 1
    redis = shutil.which("redis-server")
    print(f"redis-server: {redis or 'MISSING (apt-get install redis-server)'}")
    return 0 if redis else 1


def _analyze(args: argparse.Namespace) -> int:
    from neutrowatch import analyze
    return analyze.run(args)


def _add_analyze(sub) -> None:
    parser = sub.add_parser("analyze", help="run the detection engine offline over files; alerts as NDJSON")
    from neutrowatch import analyze
    analyze.add_arguments(parser)
    parser.set_defaults(func=_analyze)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neutrowatch", description=" ".join(__doc__.split()))
    sub = parser.add_subparsers(dest="command", required=True)
    commands: list[tuple[str, str, Callable[[argparse.Namespace], int]]] = [
        ("up", "start the whole pipeline in the foreground (embedded broker/Redis unless given)", _up),
        ("monitor", "run one streaming-detection worker (faust; group neutrowatch-monitor); "
                    "needs --kafka and --redis", _monitor),
        ("notify", "run alert delivery (routes, dedup, silences, retries, escalation, acks; group "
                   "neutrowatch-notify); needs --kafka, --redis and --notify-routing-file", _notify),
        ("demo", "start the embedded stack, replay the bundled demo patients and sample messages "
                 "printing each alert, keep the pages running", _demo),
    ]
    parsers = {}
    for name, help_text, func in commands:
        parsers[name] = p = sub.add_parser(name, help=help_text, description=help_text)
        add_settings_options(p)
        p.set_defaults(func=func)
    from neutrowatch import demo
    demo.add_arguments(parsers["demo"])
    topics = sub.add_parser("topics", help="manage NeutroWatch's Kafka topics")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True)
    create = topics_sub.add_parser("create", help="create every topic with its partition count")
    add_settings_options(create)
    create.set_defaults(func=_topics_create)
    sub.add_parser("doctor", help="check the locally needed binaries").set_defaults(func=_doctor)
    _add_analyze(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(args, "log_level", None) or "INFO",
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("kafka", "aiokafka"):  # client chatter; their warnings and errors still show
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
