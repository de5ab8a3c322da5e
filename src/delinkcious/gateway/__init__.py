"""The gateway: Delinkcious's public REST API (``/v1``), designed by hand for people."""
