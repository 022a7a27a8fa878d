"""Each nation's audit log: hash-chained, envelope-encrypted with the nation's Vault transit key.

A nation's directory holds one log per writer (`decisions/`, `admin/`: see _streams.py).
`AuditLog(directory, nation, vault)` appends (durable when `append` returns); `verify` checks the chain and
decrypts with the caller's token; `read` returns the decrypted records of a recent period.
"""

from sovereign.audit._errors import AuditAccessDenied, AuditLogClosed, AuditLogCorrupt, AuditLogTampered
from sovereign.audit._log import AuditLog, DataKeySource
from sovereign.audit._records import (
    ADMIN_EVENTS,
    DECISION_EVENT,
    REFUSAL_EVENT,
    AuditActor,
    AuditDecision,
    AuditRecord,
)
from sovereign.audit._report import AuditProblem, VerifyReport
from sovereign.audit._streams import (
    ADMIN_STREAM,
    DECISIONS_STREAM,
    STREAMS,
    nation_audit_directory,
    set_aside,
    stream_directories,
    stream_directory,
)
from sovereign.audit._verify import read, verify

__all__ = [
    "ADMIN_EVENTS",
    "ADMIN_STREAM",
    "DECISIONS_STREAM",
    "DECISION_EVENT",
    "REFUSAL_EVENT",
    "STREAMS",
    "AuditAccessDenied",
    "AuditActor",
    "AuditDecision",
    "AuditLog",
    "AuditLogClosed",
    "AuditLogCorrupt",
    "AuditLogTampered",
    "AuditProblem",
    "AuditRecord",
    "DataKeySource",
    "VerifyReport",
    "nation_audit_directory",
    "read",
    "set_aside",
    "stream_directories",
    "stream_directory",
    "verify",
]
