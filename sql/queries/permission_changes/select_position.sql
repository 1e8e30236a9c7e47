-- params: $1 text reader name, $2 float8 seconds within which a reader counts as live
--         (two of its heartbeats)
-- returns: position bigint (an xid8) where the reader stopped. A reader never seen
--          starts where the furthest-behind live reader stands (their Redis is
--          the same: what they applied is applied); when no reader is live (every
--          instance was down: the changes written meanwhile may be applied by
--          nobody), where the furthest-behind reader of all stopped; with no
--          reader at all, at the current horizon.
select coalesce(
    (select position from permission_change_readers where name = $1),
    (select min(position) from permission_change_readers
     where seen_at > now() - make_interval(secs => $2)),
    (select min(position) from permission_change_readers),
    pg_snapshot_xmin(pg_current_snapshot())
)::text::bigint as position
