"""Who is calling: API clients (tenants) and their bearer keys."""
