"""Talk 09/10 - Admission policy offline: the chart under Gatekeeper (gator) and the
ClusterImagePolicy under policy-controller's tester.
"""
