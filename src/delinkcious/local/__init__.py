"""The local distributed shape (`delinkcious up --processes`): the files in its data
directory through which the supervisor, the traffic shaper, Prometheus and
`delinkcious rollout` agree on what runs and where traffic goes."""
