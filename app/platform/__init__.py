"""What every process stands on: settings, database, logs, metrics, Sentry, AWS."""
