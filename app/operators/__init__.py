"""What operators use: the exports-admin CLI and read-only views of the queue."""
