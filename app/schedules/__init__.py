"""Recurring exports: slot arithmetic (timing) and schedules in the database (store)."""
