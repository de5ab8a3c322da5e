"""Traffic shaping between services: route tables, replicas, stable and canary pools."""
