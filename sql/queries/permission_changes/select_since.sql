-- params: $1 bigint position (an xid8; bigint on the wire) (every change below it is applied),
--         $2 bigint[] ids of the changes above it this reader has applied already
-- returns: horizon bigint, snapshot text (xmin:xmax:xip,..., which transactions this
--          read saw as ended), then per change: id bigint, xid bigint, user_ids bigint[],
--          role_ids bigint[], everyone boolean, age float8 (seconds since written) (null when no change is visible)
-- horizon: the xmin of this statement's snapshot. Every transaction with a
-- smaller id has ended, so no change below it can still appear: it is the next
-- position. Changes at or above it that are visible have committed and are
-- applied now (permcore/stream.py remembers them so as not to apply them twice).
select pg_snapshot_xmin(pg_current_snapshot())::text::bigint as horizon,
       pg_current_snapshot()::text as snapshot,
       c.id, c.xid::text::bigint as xid, c.user_ids, c.role_ids, c.everyone,
       extract(epoch from clock_timestamp() - c.created_at)::float8 as age
from (select 1) one
left join permission_changes c on c.xid >= $1::bigint::text::xid8
                               and c.id <> all($2::bigint[])
order by c.xid, c.id
