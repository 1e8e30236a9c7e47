-- returns: xid bigint, the running transaction's id (an xid8; assigned now if it had none),
--          logged boolean, whether the transaction wrote to the change log so far
-- A write's consistency token: once a reader's snapshot sees it as ended, the
-- reader has applied every change committed before it (permcore/stream.py). A
-- write that logged nothing changed no permission entry: nobody waits for it.
select pg_current_xact_id()::text::bigint as xid,
       exists (select 1 from permission_changes where xid = pg_current_xact_id()) as logged
