-- returns: xid bigint, the running transaction's id (an xid8; assigned now if it had none)
-- A write's consistency token: once a reader's snapshot sees it as ended, the
-- reader has applied every change committed before it (permcore/stream.py).
select pg_current_xact_id()::text::bigint
