"""The devstack's Kubernetes API server (`python -m sovereign_devstack.kube`), built on kmock's emulator.

Modules: server (routing, kmock subclass), resource_handlers (verbs), object_reads / object_writes (get,
list, create, update, patch, delete), watch, store (objects, resourceVersion, history), selectors, tables,
discovery, openapi, crds, builtin_resources / builtin_defaults, validation, controllers (garbage collection,
namespace and CRD cleanup), admission (validating webhooks) and admission_policies
(ValidatingAdmissionPolicies in CEL), service_account_tokens, access_reviews, protobuf_bodies, errors.
Identity: tls (HTTPS, client CA), authn (certificates, tokens, anonymous health), impersonation, rbac (the
authorizer), rbac_writes (escalation prevention), rbac_bootstrap (default roles).
schema*.py and patching*.py hold the pure CRD-schema and PATCH logic.
"""
