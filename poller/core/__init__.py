"""The topic-agnostic poller: claim, lease, heartbeat, settle, fail, shut down."""
