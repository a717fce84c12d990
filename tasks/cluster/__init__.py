"""Talk 09/10 - A cluster to admit into: the kind engine, kubectl wiring, Gatekeeper and
policy-controller charts, the demo steps.
"""
