-- params: $1 float8 retention in seconds
-- The changes every live reader has applied: those below the lowest position of
-- the readers seen within the retention (a reader's position moves only past
-- what it applied, so no change is deleted before every live reader read it).
-- Readers not seen within the retention are forgotten: they no longer hold the
-- log back, and one that comes back starts where the furthest-behind reader
-- stands (select_position.sql), relying on the keeper and the TTL for older.
with gone as (
    delete from permission_change_readers
    where seen_at < now() - make_interval(secs => $1)
)
delete from permission_changes
where xid < (select min(position) from permission_change_readers
             where seen_at > now() - make_interval(secs => $1))
