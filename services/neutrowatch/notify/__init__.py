"""Alert delivery (`neutrowatch notify`): route, dedup, silence, inhibit, deliver, retry, escalate,
record acknowledgements. The decisions are pure functions that return a reason (routing,
decisions, messages); receivers, the Redis store and the Kafka loop are adapters at the edge."""
