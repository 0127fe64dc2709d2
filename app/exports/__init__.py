"""The exports domain: jobs and their state machine, the export catalog, download links."""
