"""Audit locked requirements with pip-audit, honestly (`make audit`).

    .tools-venv/bin/python scripts/audit.py [--service pypi|osv] [--osv-url URL] [--timeout S] LOCK...

pip-audit without a reachable vulnerability database marks every package "not found", prints
"No known vulnerabilities found" and exits 0. Here each lock is audited with ``--strict`` (one
package that could not be looked up fails the audit) and the outcome is one of three, never
confused:

    clean       every package was looked up and none has a known vulnerability   exit 0
    VULNERABLE  at least one package has a known vulnerability                   exit 1
    NOT RUN     the audit could not look everything up (no database reachable,   exit 2
                a package unknown to the service, pip-audit crashed): nothing is known

The worst outcome over all locks decides the exit status. pip-audit runs with ``--no-deps
--disable-pip``: the locks are complete and hashed, so nothing is resolved or installed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CLEAN, VULNERABLE, NOT_RUN = 0, 1, 2
LABELS = {CLEAN: "clean", VULNERABLE: "VULNERABLE", NOT_RUN: "NOT RUN"}


def describe(dependency: dict) -> str:
    """``name version (ids and aliases; fixed in versions)`` for one vulnerable dependency."""
    ids = [i for v in dependency["vulns"] for i in [v["id"], *v.get("aliases", [])]]
    fixes = [f for v in dependency["vulns"] for f in v.get("fix_versions", [])]
    fixed = ", ".join(fixes) or "no release"
    return f"{dependency['name']} {dependency['version']} ({', '.join(ids)}; fixed in {fixed})"


def audit(lock: Path, extra: list[str]) -> tuple[int, str]:
    """Audit one lock; return (outcome, one-paragraph report)."""
    if not lock.is_file():
        return NOT_RUN, f"{lock}: no such file"
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        command = [sys.executable, "-m", "pip_audit", "--strict", "--no-deps", "--disable-pip"]
        command += ["--progress-spinner", "off", "--format", "json", "--output", str(report)]
        command += [*extra, "--requirement", str(lock)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        data = json.loads(report.read_text()) if report.is_file() and report.stat().st_size else None
    log = [line for line in result.stderr.splitlines() if line.strip() and "WARNING" not in line]
    if data is None:
        # --strict stops at the first package it could not look up, before writing any report;
        # a crash (a DNS failure with the OSV service) ends the same way.
        reason = next((line for line in log if "could not be audited" in line), log[-1] if log else "")
        return NOT_RUN, f"{lock}: pip-audit exited {result.returncode} with no report. {reason.strip()}"
    dependencies = data.get("dependencies", [])
    skipped = [d for d in dependencies if d.get("skip_reason")]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    if skipped or not dependencies:
        why = skipped[0]["skip_reason"] if skipped else "no packages audited"
        return NOT_RUN, f"{lock}: {len(skipped)} of {len(dependencies)} packages not looked up ({why})"
    if vulnerable:
        found = ", ".join(describe(d) for d in vulnerable)
        return VULNERABLE, f"{lock}: {len(vulnerable)} of {len(dependencies)} packages vulnerable: {found}"
    if result.returncode != 0:
        return NOT_RUN, f"{lock}: pip-audit exited {result.returncode}: {log[-1] if log else ''}"
    return CLEAN, f"{lock}: {len(dependencies)} packages looked up, no known vulnerabilities"


def main(argv: list[str] | None = None) -> int:
    """Audit every lock given; exit with the worst outcome."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("locks", nargs="+", type=Path)
    parser.add_argument("--service", choices=("pypi", "osv"), default="pypi")
    parser.add_argument("--osv-url", help="OSV API URL (pip-audit's --osv-url)")
    parser.add_argument("--timeout", type=int, default=15, help="socket timeout, seconds")
    args = parser.parse_args(argv)
    extra = ["--vulnerability-service", args.service, "--timeout", str(args.timeout)]
    if args.osv_url:
        extra += ["--osv-url", args.osv_url]
    worst = CLEAN
    for lock in args.locks:
        outcome, report = audit(lock, extra)
        print(f"audit {LABELS[outcome]}: {report}")
        worst = max(worst, outcome)
    service = args.service + (f" at {args.osv_url}" if args.osv_url else "")
    print(f"audit result: {LABELS[worst]} ({len(args.locks)} lock(s), service {service})")
    if worst == NOT_RUN:
        print("The audit did not run: this says nothing about vulnerabilities, it is not a pass.")
    return worst


if __name__ == "__main__":
    sys.exit(main())
