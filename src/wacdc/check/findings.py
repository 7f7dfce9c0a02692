"""What `wacdc check` reports: one finding per check, and the exit code they make."""

from __future__ import annotations

from dataclasses import dataclass

from wacdc.errors import EXIT_FINDING, EXIT_OK

OK, WARN, PROBLEM = "ok", "warn", "PROBLEM"


@dataclass
class Finding:
    status: str  # ok, warn, PROBLEM
    name: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<8}{self.name}: {self.detail}"
        if self.fix and self.status != OK:
            text += f"\n{'':<8}-> {self.fix}"
        return text


@dataclass
class FixResult:
    changed: list[str]
    notes: list[str]


def exit_code(findings: list[Finding]) -> int:
    return EXIT_FINDING if any(f.status == PROBLEM for f in findings) else EXIT_OK
