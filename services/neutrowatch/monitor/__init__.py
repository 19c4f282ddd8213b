"""The streaming monitor: faust workers in one consumer group, per-patient state in Redis.

state_store (Redis keys, atomic per-patient commit, outbox, alert index) -> processor (one batch:
decode, step, commit, relay) -> worker (faust app and agent, readiness) ; api/openapi (HTTP reads);
supervisor (`up` runs the worker as a restarted child process)."""
