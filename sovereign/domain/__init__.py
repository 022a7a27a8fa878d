"""The platform's domain model: markings and nations.

CRD specs, the policy schema and the policy engine's input all derive from it.
"""
