"""The operator console's page templates and stylesheet (app/http/console.py).

A package so that a wheel install carries the files (setup.cfg package_data).
"""
