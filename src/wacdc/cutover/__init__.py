"""The cutover (DESIGN §6): freeze, drain, verify, fence, finalize — nothing lost.

A request is a row in `wacdc.cutover` (`wacdc cutover`, `POST /cutover`, or
`WACDC_CUTOVER=1`); the coordinator runs the controller between the stream's items
and polls the row every half second. Then:

1. wait until streaming with lag <= WACDC_CUTOVER_MAX_LAG (timeout: refused, back to
   streaming); rows that break a profile foreign key refuse it under WACDC_ORPHANS=fail
   (checked on a connection of their own while streaming goes on);
2. freeze: `LOCK TABLES <tracked> READ` on a dedicated connection: the app's writes
   wait, its reads go on. A guard thread unlocks and aborts once the freeze passes
   WACDC_CUTOVER_MAX_FREEZE, unless the cutover has passed its point of no return;
3. drain to the source head, then compare row counts of every table (mismatch:
   unlock, refused);
4. fence: unlock and `RENAME TABLE t TO t__wacdc_retired, ...` at once; the stream is
   followed until that RENAME itself is read, so a write that slipped in between the
   unlock and the rename is still applied (WACDC_FENCE=none: unlock only);
5. finalize PostgreSQL before the app's first write: identity sequences past the
   maximum, the profile's foreign keys `NOT VALID`; record the cutover, phase `done`;
   then (not blocking anyone) VALIDATE with orphans reported and, under
   WACDC_ORPHANS=apply, the relation's onDelete action applied; ANALYZE.

The write pause is lock -> rename (`wacdc_cutover_freeze_seconds`). The parts:
`control` (the request rows), `freeze` (the guard), `precheck`, `controller` (the state
machine), `finalize` (PostgreSQL's side), `http` (POST /cutover).
"""

from wacdc.cutover.control import ACTIVE, FINAL, CutoverStatus, abort, latest, request
from wacdc.cutover.finalize import advance_identities

__all__ = ["ACTIVE", "FINAL", "CutoverStatus", "abort", "advance_identities", "latest",
           "request"]
