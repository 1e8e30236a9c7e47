-- params: $1 text reader name
-- returns: position bigint (an xid8) where the reader stopped. A reader never seen
--          starts where the furthest-behind reader stands (the changes no reader
--          may have applied yet: all instances may have been down while they were
--          written), or at the current horizon when there is no reader at all.
select coalesce(
    (select position from permission_change_readers where name = $1),
    (select min(position) from permission_change_readers),
    pg_snapshot_xmin(pg_current_snapshot())
)::text::bigint as position
