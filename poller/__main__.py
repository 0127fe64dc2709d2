"""`python -m poller` is `exports-poller`."""

from poller.main import main

main()
