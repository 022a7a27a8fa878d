"""What the audit log raises."""

from __future__ import annotations

from sovereign.audit._report import VerifyReport


class AuditLogCorrupt(RuntimeError):
    """The log cannot be opened or read as it is: run verify to locate what is wrong."""


class AuditLogClosed(RuntimeError):
    """The log was closed, or a write failed and it must be reopened."""


class AuditAccessDenied(PermissionError):
    """Vault refused to unwrap the nation's data keys with the caller's token (403)."""

    def __init__(self, nation: str) -> None:
        super().__init__(f"cannot decrypt {nation}'s audit data keys with these credentials (403)")
        self.nation = nation


class AuditLogTampered(AuditLogCorrupt):
    """Reading found records that fail verification; `report` locates them."""

    def __init__(self, report: VerifyReport) -> None:
        first = report.problems[0]
        super().__init__(
            f"{report.nation}'s audit log fails verification ({len(report.problems)} problem(s), first: "
            f"{first.message}); run verify"
        )
        self.report = report
