"""The platform's policies as package data: this folder is the package `sovereign_policies` (setup.py).

`cedar/`: the Cedar schema, base policies and their ALLOW/DENY cases; `vault/`: the Vault ACL policies.
Code reads them with importlib.resources (sovereign/policy_files.py), never by a path from its own file.
"""
