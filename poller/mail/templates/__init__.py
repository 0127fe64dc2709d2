"""Email templates; a package only so setup.cfg's package_data ships the .txt/.html files."""
