"""Background services beside the dispatch loop: the scheduler and maintenance."""
