"""Which packages the platform's wheel holds; everything else about it is in pyproject.toml.

pyproject.toml cannot say this alone: beside the packages found in their folders (the shared `sovereign` at
the top level, `sovereign_operator` and `sovereign_serving` in operator/ and serving/ so that no importable
module is named `operator`), the `policies/` folder is the package `sovereign_policies`, whose package data
are the Cedar and Vault policies (pyproject.toml's package-data), read with importlib.resources. The devstack
is not here: it is its own distribution (devstack/pyproject.toml).
"""

from setuptools import find_namespace_packages, setup

# Top-level package -> the folder holding it.
FOLDERS = {"sovereign": ".", "sovereign_operator": "operator", "sovereign_serving": "serving"}
NOT_PACKAGES = ["*__pycache__*"]

# The policies' folders are packages too (of data only), so that setuptools installs their files as data.
packages = ["sovereign_policies"]
packages += [f"sovereign_policies.{p}" for p in find_namespace_packages("policies", exclude=NOT_PACKAGES)]
package_dir = {"sovereign_policies": "policies"}
for top, folder in FOLDERS.items():
    packages += find_namespace_packages(folder, include=[top, f"{top}.*"], exclude=NOT_PACKAGES)
    package_dir[top] = top if folder == "." else f"{folder}/{top}"

setup(packages=packages, package_dir=package_dir)
