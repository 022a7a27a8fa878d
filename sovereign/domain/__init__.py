"""The platform's domain model: markings, nations and the platform's own names.

CRD specs, the policy schema and the policy engine's input all derive from it.
"""
