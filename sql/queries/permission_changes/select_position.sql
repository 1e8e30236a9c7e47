-- params: $1 text reader name
-- returns: position bigint (an xid8) where the reader stopped, or the current horizon for a
--          reader never seen (the changes before it are the keeper's and TTL's)
select coalesce(
    (select position from permission_change_readers where name = $1),
    pg_snapshot_xmin(pg_current_snapshot())
)::text::bigint as position
