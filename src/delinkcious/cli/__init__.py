"""The ``delinkcious`` command."""
