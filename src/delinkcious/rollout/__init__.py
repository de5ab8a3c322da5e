"""``delinkcious rollout``: a new version of one service beside the current one, traffic
moved by a strategy (recreate, rolling, blue-green, canary with analysis), over the
processes of ``up --processes``."""
