"""The `wacdc` command line (DESIGN §7). Exit codes: 0 ok, 1 a finding, 2 an error."""

from __future__ import annotations

import argparse
import math
import sys
import threading
import traceback
from collections.abc import Callable
from typing import TypeAlias

from wacdc import __version__
from wacdc.config import Settings, load_settings
from wacdc.errors import EXIT_ERROR, EXIT_FINDING, EXIT_OK, WacdcError
from wacdc.log import configure_logging, redact

DESCRIPTION = """\
wacdc copies MySQL/MariaDB tables into PostgreSQL and keeps them in sync from the
binlog, then cuts over with a sub-second write pause.

Typical order:  wacdc check  ->  wacdc schema --apply  ->  wacdc run  ->
                wacdc verify  ->  wacdc cutover --wait
After it, `wacdc run` keeps MySQL current from PostgreSQL (WACDC_REVERSE=0: off), so
                wacdc rollback --wait  goes back to MySQL with nothing lost.

Configuration comes from the environment (or a TOML file given with --config):
  WACDC_SOURCE_URL   (else DATABASE_URL)           mysql://user:pass@host:3306/db
                     TLS: ?ssl-mode=PREFERRED (default)|REQUIRED|VERIFY_CA|VERIFY_IDENTITY
                     |DISABLED, &ssl-ca=FILE, ssl-cert, ssl-key (or Prisma's sslaccept=...)
  WACDC_TARGET_URL   (else WHATSAPP_DATABASE_URL, else POSTGRES_URL_NON_POOLING)
                     postgresql://user:pass@host:5432/db?sslmode=verify-full&sslrootcert=F
                     the direct URL: a pooled one (pgbouncer=true) is refused
  WACDC_PROFILE      prisma (default: the 19 WhatsApp tables) | plain | path.toml
  WACDC_TABLES       comma list (default: the profile's tables; all tables under plain)
  WACDC_TARGET_SCHEMA  (default public)   WACDC_SERVER_ID   WACDC_LOG_FORMAT json|console
  WACDC_BAD_VALUES   coerce (default) | strict   -- see docs/types.md
  WACDC_METRICS_PORT (else PORT, else 9108): /metrics /healthz /status while running
  WACDC_ADMIN_TOKEN  enables POST /cutover and POST /rollback
  WACDC_CUTOVER_MAX_LAG/_TIMEOUT/_MAX_FREEZE   (the rollback's too)
  Every setting: README.md, "Configuration". Runbooks: docs/operations.md,
  docs/cutover.md, docs/rollback.md

Exit codes: 0 ok, 1 a finding (a check failed, verify found differences), 2 an error.
"""

Handler = Callable[[argparse.Namespace, Settings], int]
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from wacdc.check import exit_code, fix_settings, run_checks
    from wacdc.schema.profile import load_profile

    profile = load_profile(settings.profile)
    if args.fix:
        result = fix_settings(settings)
        if result.changed:
            for line in result.changed:
                print(f"changed {line}")
            for note in result.notes:
                print(f"note    {note}")
        else:
            print("nothing to fix online: every fixable binlog setting already has the "
                  "value wacdc needs")
    findings = run_checks(settings, profile, allow_plaintext=args.allow_plaintext)
    for finding in findings:
        print(finding.line())
    code = exit_code(findings)
    problems = sum(1 for f in findings if f.status == "PROBLEM")
    print(f"\n{'all checks passed' if code == 0 else f'{problems} problem(s) found'}")
    return code


def _cmd_schema(args: argparse.Namespace, settings: Settings) -> int:
    from wacdc.schema.ddl import apply_steps, default_notes, plan_ddl, skipped_index_notes
    from wacdc.sink.connection import connect_target
    from wacdc.source.catalog import plan_target

    profile, tables = plan_target(settings)
    steps = plan_ddl(tables, profile, settings.target_schema, indexes=not args.no_indexes)
    by_name = {t.name: t for t in tables}
    if not args.apply:
        print(f"-- wacdc {__version__}: profile {profile.name}, "
              f"{len(tables)} tables, schema {settings.target_schema}")
        for step in steps:
            print(step.sql)
            if step.kind == "table":
                for note in by_name[step.name].notes:  # SQL comments: the output stays SQL
                    print(note.comment)
        for skipped in skipped_index_notes(tables):
            print(skipped)
        print("-- foreign keys are created at cutover (NOT VALID, then VALIDATE)")
        return EXIT_OK
    with connect_target(settings.target()) as target:
        changes = apply_steps(target, steps, tables, settings.target_schema)
    if args.extras:
        from wacdc.schema.extras import apply_extras

        with connect_target(settings.target(), autocommit=True) as target:
            for name in apply_extras(target, profile, settings.target_schema,
                                     {t.name for t in tables}):
                changes.append(f"extra {name} in place")
    if changes:
        for change in changes:
            print(change)
        print(f"{len(changes)} change(s) applied")
    else:
        print("nothing to change: the target already has every object")
    for note in default_notes(tables):
        print(f"note: {note.table}.{note.column}: {note.text}")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from wacdc.coordinator import run
    from wacdc.sink.pool import TargetPool

    pool = TargetPool(settings)  # the short control-plane connections (WHATSAPP_DB_POOL_*)
    try:  # run() serves /metrics, /healthz, /status and POST /cutover too
        return run(settings, args.stop, pool, snapshot_only=args.snapshot_only,
                   exit_when_caught_up=args.exit_when_caught_up,
                   resume_after_ddl=args.resume_after_ddl)
    finally:
        pool.close()


def _cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from wacdc.observe.status import collect, exit_code, render

    doc = collect(settings)
    print(json.dumps(doc, indent=2) if args.json else render(doc))
    return exit_code(doc)


def _cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from wacdc.verify import exit_code, render, verify

    reports = verify(settings, args.table, repair=args.repair)
    if args.json:
        print(json.dumps({"identical": exit_code(reports) == 0,
                          "tables": [r.as_dict() for r in reports]}, indent=2))
    else:
        print(render(reports, args.repair))
    return exit_code(reports)


def _cmd_cutover(args: argparse.Namespace, settings: Settings) -> int:
    def already(phase: str | None) -> tuple[str, int] | None:
        if phase in ("done", "reverse", "rollback"):
            return ("the cutover is already done: PostgreSQL is the primary "
                    "(`wacdc status`)", EXIT_OK)
        if phase == "bridge":
            return ("the cutover is done and its bridge window is open (MySQL not fenced "
                    "yet): `wacdc cutover --close-bridge` closes it", EXIT_OK)
        return None

    from wacdc.cutover.ask import ask

    bridge = args.bridge or args.bridge_max is not None or settings.cutover_bridge
    return ask(settings, "cutover", already, wait=args.wait, abort=args.abort,
               bridge_max=(args.bridge_max or settings.bridge_max) if bridge else None,
               close_bridge=args.close_bridge)


def _cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    def already(phase: str | None) -> tuple[str, int] | None:
        if phase == "bridge":
            return ("a bridge window is open: MySQL is still current and writable. Close it "
                    "first (`wacdc cutover --close-bridge`), then roll back", EXIT_FINDING)
        if phase not in ("done", "reverse", "rollback"):
            return (f"nothing to roll back: no cutover is done (phase {phase or 'none'}); "
                    "MySQL is the primary (`wacdc status`)", EXIT_FINDING)
        return None

    from wacdc.cutover.ask import ask

    return ask(settings, "rollback", already, wait=args.wait, abort=args.abort)


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from wacdc.devtools.demo import run_demo

    return run_demo(rows=args.rows, rate=args.rate, duration=args.duration, keep=args.keep,
                    bridge=args.bridge,
                    source=args.source)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wacdc", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"wacdc {__version__}")
    parser.add_argument("--config", metavar="FILE",
                        help="TOML file with settings (environment variables win)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_check(sub)
    _add_schema(sub)
    _add_run(sub)
    _add_status(sub)
    _add_verify(sub)
    _add_cutover(sub)
    _add_rollback(sub)
    _add_demo(sub)
    return parser


def _add_check(sub: Subparsers) -> None:
    p = sub.add_parser("check", help="preflight: binlog settings, privileges, tables, target",
                       description="Check that the source and target are ready. Prints one "
                       "line per check; exit 0 when all pass, 1 when any fails. Says for "
                       "each side whether the connection is encrypted (TLS version, "
                       "cipher) and whether a pooler stands in front of PostgreSQL.")
    p.add_argument("--fix", action="store_true",
                   help="set what can be set online (binlog_row_metadata=FULL, ...) first")
    p.add_argument("--allow-plaintext", action="store_true",
                   help="an unencrypted connection to a host that is not loopback is a "
                   "warning, not a problem (a private network you trust). TLS: the source "
                   "URL takes ?ssl-mode=REQUIRED|VERIFY_CA|VERIFY_IDENTITY&ssl-ca=FILE, "
                   "the target URL ?sslmode=require|verify-full&sslrootcert=FILE")
    p.set_defaults(func=_cmd_check)


def _add_schema(sub: Subparsers) -> None:
    p = sub.add_parser("schema", help="print (or --apply) the PostgreSQL DDL",
                       description="Print the target DDL for the configured tables and "
                       "profile. --apply creates what is missing; a second run changes nothing.")
    p.add_argument("--apply", action="store_true", help="create the objects in the target")
    p.add_argument("--no-indexes", action="store_true",
                   help="leave secondary indexes out (a snapshot builds them after loading)")
    p.add_argument("--extras", action="store_true",
                   help="with --apply: also the profile's PostgreSQL extras (full-text and "
                   "tags GIN indexes, the campaign_stats materialized view) that the "
                   "cutover creates")
    p.set_defaults(func=_cmd_schema)


def _add_run(sub: Subparsers) -> None:
    p = sub.add_parser("run", help="snapshot, then stream the binlog into PostgreSQL",
                       description="Copy the tables (resumable: a restart continues), then "
                       "follow the binlog. SIGTERM/SIGINT stop cleanly after the current "
                       "chunk or batch.")
    p.add_argument("--exit-when-caught-up", action="store_true",
                   help="exit 0 once the applied position equals the source head")
    p.add_argument("--snapshot-only", action="store_true",
                   help="take (or finish) the snapshot, then exit 0")
    p.add_argument("--resume-after-ddl", action="store_true",
                   help="accept the schema change that stopped the last run (after making "
                   "the matching change in PostgreSQL) and go on")
    p.set_defaults(func=_cmd_run)


def _add_status(sub: Subparsers) -> None:
    p = sub.add_parser("status", help="phase, positions, lag and counts (from the target)",
                       description="What wacdc is doing, read from schema wacdc in the "
                       "target: phase, whether a daemon runs (else since when it stopped), "
                       "checkpoint, lag, rows per table; plus the source's head now when the "
                       "source is reachable. Works from any machine, daemon up or down. Exit "
                       "0 shown, 1 phase failed or wacdc never ran here, 2 an error.")
    p.add_argument("--json", action="store_true", help="one JSON document (for scripts)")
    p.set_defaults(func=_cmd_status)


def _add_verify(sub: Subparsers) -> None:
    p = sub.add_parser("verify", help="compare source and target row by row",
                       description="Compare every replicated table: row counts, checksums "
                       "over key chunks in the converted form (so MySQL and PostgreSQL values "
                       "compare exactly), narrowed to the rows that differ, with the "
                       "differing columns. Safe while `wacdc run` streams: a difference is "
                       "re-checked once the daemon has applied past it. Exit 0 identical, "
                       "1 differences, 2 an error.")
    p.add_argument("--table", action="append", metavar="T",
                   help="only this table (repeatable)")
    p.add_argument("--json", action="store_true", help="one JSON document (for scripts)")
    p.add_argument("--repair", action="store_true",
                   help="re-copy exactly the differing rows from the source (and delete "
                   "rows only PostgreSQL has), then check them again")
    p.set_defaults(func=_cmd_verify)


def _add_cutover(sub: Subparsers) -> None:
    p = sub.add_parser("cutover", help="request the cutover from the running daemon",
                       description="Ask the running `wacdc run` to cut over (a control row in "
                       "schema wacdc; it sees it within a second): wait for lag <= "
                       "WACDC_CUTOVER_MAX_LAG, freeze the source tables (writes wait, reads go "
                       "on), drain, compare row counts, fence the source (rename the tables "
                       "<name>__wacdc_retired), finalize PostgreSQL. With --bridge the fence "
                       "waits: a bridge window keeps both stores current while the app's "
                       "instances move to PostgreSQL (docs/cutover.md, \"Bridge window\"). "
                       "Exit 0 requested/done, 1 refused or aborted, 2 an error.")
    _request_flags(p, "cutover", "the source")
    p.add_argument("--bridge", action="store_true",
                   help="open a bridge window instead of fencing MySQL at once: old app "
                   "instances may go on writing MySQL (replicated to PostgreSQL) while new "
                   "ones write PostgreSQL (replicated to MySQL); --wait returns once it is "
                   "open. It closes after WACDC_BRIDGE_QUIET (60) s without a MySQL write, "
                   "at --bridge-max, or on --close-bridge")
    p.add_argument("--bridge-max", type=_seconds, metavar="SECONDS", default=None,
                   help="close the bridge window after at most SECONDS (default "
                   "WACDC_BRIDGE_MAX, 900); implies --bridge")
    p.add_argument("--close-bridge", action="store_true",
                   help="close the open bridge window now: MySQL is frozen, drained and "
                   "fenced; --wait follows it to done")
    p.set_defaults(func=_cmd_cutover)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds > 0")
    return value


def _request_flags(p: argparse.ArgumentParser, kind: str, frozen: str) -> None:
    p.add_argument("--wait", action="store_true",
                   help="follow it to the end: exit 0 when done, 1 when refused or aborted")
    p.add_argument("--abort", action="store_true",
                   help=f"cancel a requested {kind} that has not frozen {frozen} yet")


def _add_rollback(sub: Subparsers) -> None:
    p = sub.add_parser("rollback", help="go back to MySQL after the cutover, nothing lost",
                       description="Ask the running `wacdc run` (in phase reverse: it keeps "
                       "the retired MySQL tables current from PostgreSQL) to roll back: wait "
                       "for reverse lag <= WACDC_CUTOVER_MAX_LAG, freeze PostgreSQL's "
                       "replicated tables (writes wait, reads go on), drain into MySQL, "
                       "compare row counts, fence PostgreSQL (a trigger refuses the app's "
                       "writes), rename the MySQL tables back. Then point the app at MySQL; "
                       "wacdc replicates MySQL -> PostgreSQL again, and the cutover can be "
                       "tried later. See docs/rollback.md. Exit 0 requested/done, 1 refused, "
                       "aborted or nothing to roll back, 2 an error.")
    _request_flags(p, "rollback", "PostgreSQL")
    p.set_defaults(func=_cmd_rollback)


def _add_demo(sub: Subparsers) -> None:
    p = sub.add_parser("demo", help="the whole job on private local servers",
                       description="Start private Oracle MySQL (or MariaDB) and PostgreSQL "
                       "servers (temp dirs, free ports), load the 19 WhatsApp tables, run "
                       "`wacdc run` while app-like traffic writes (campaign bursts, inbound "
                       "messages, analytics events, customer edits), show a live view, cut "
                       "over under that traffic and print the verification report and the "
                       "write pause. Everything is stopped and removed at the end or on "
                       "Ctrl-C. Exit 0 when the cutover is done and verify finds the tables "
                       "identical.")
    p.add_argument("--rows", type=int, default=20_000, metavar="N",
                   help="WhatsAppMessage rows to load; the other tables in proportion "
                   "(default 20000)")
    p.add_argument("--rate", type=float, default=50, metavar="TPS",
                   help="app transactions per second during the demo (default 50)")
    p.add_argument("--duration", type=float, default=20, metavar="S",
                   help="seconds of streaming under traffic before the cutover (default 20)")
    p.add_argument("--keep", action="store_true",
                   help="leave the servers running at the end and print their URLs")
    p.add_argument("--source", choices=("auto", "mysql", "mariadb"), default="auto",
                   help="the source server: Oracle MySQL (what Railway runs; an installed "
                   "mysqld >= 8.0 or the root `make servers` builds), MariaDB, or auto "
                   "(MySQL when available; default)")
    p.add_argument("--bridge", action="store_true",
                   help="cut over with a bridge window: the app is \"redeployed\" under "
                   "traffic (old instances on MySQL, new ones on PostgreSQL, both at once) "
                   "and no write fails")
    p.set_defaults(func=_cmd_demo)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.stop = threading.Event()  # set by SIGTERM/SIGINT; `wacdc run` ends cleanly on it
    if args.command == "run":
        # Before anything slow: a SIGTERM during start-up must also end cleanly (exit 0).
        from wacdc.coordinator import install_stop_handlers

        install_stop_handlers(args.stop)
    try:
        settings = load_settings(args.config)
        configure_logging(settings.log_format, settings.log_level, settings.secrets())
        return args.func(args, settings)
    except WacdcError as exc:
        print(f"wacdc: error: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("wacdc: interrupted", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001 - last resort: a redacted traceback and exit 2, never 1
        print(redact(traceback.format_exc()), file=sys.stderr)
        print("wacdc: internal error (above); please report it with the command you ran",
              file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
