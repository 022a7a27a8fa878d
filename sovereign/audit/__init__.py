"""Each nation's audit log: hash-chained, envelope-encrypted with the nation's Vault transit key.

`AuditLog(directory, nation, vault)` appends (durable when `append` returns); `verify` checks the chain and
decrypts with the caller's token; `read` returns the decrypted records of a recent period.
"""

from sovereign.audit._errors import AuditAccessDenied, AuditLogClosed, AuditLogCorrupt, AuditLogTampered
from sovereign.audit._log import AuditLog, audit_key_name
from sovereign.audit._records import ADMIN_EVENTS, DECISION_EVENT, AuditActor, AuditDecision, AuditRecord
from sovereign.audit._verify import AuditProblem, VerifyReport, read, verify

__all__ = [
    "ADMIN_EVENTS",
    "DECISION_EVENT",
    "AuditAccessDenied",
    "AuditActor",
    "AuditDecision",
    "AuditLog",
    "AuditLogClosed",
    "AuditLogCorrupt",
    "AuditLogTampered",
    "AuditProblem",
    "AuditRecord",
    "VerifyReport",
    "audit_key_name",
    "read",
    "verify",
]
