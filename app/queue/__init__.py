"""The outbox work queue as tables: messages (outbox) and the pollers working them (workers)."""
