-- params: $1 float8 retention in seconds
-- The changes every reader seen within the retention has applied, and any change
-- older than the retention (a reader gone that long starts again at the horizon
-- and relies on the keeper and the TTL for what it missed).
delete from permission_changes
where created_at < now() - make_interval(secs => $1)
   or xid < (select min(position) from permission_change_readers
             where seen_at > now() - make_interval(secs => $1))
