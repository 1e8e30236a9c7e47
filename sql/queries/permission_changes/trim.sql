-- params: $1 float8 retention in seconds
-- The changes every live reader has applied: those below the lowest position of
-- the readers seen within the retention (a reader's position moves only past
-- what it applied, so no change is deleted before every live reader read it).
-- And, as a backstop against a transaction held open for a day (which holds
-- every position back), committed changes older than 24 retentions: every
-- reader passing meanwhile has applied them (a pass applies what it sees).
-- Readers not seen within the retention are forgotten: they no longer hold the
-- log back, and one that comes back starts as a new one (select_position.sql).
with gone as (
    delete from permission_change_readers
    where seen_at < now() - make_interval(secs => $1)
)
delete from permission_changes
where xid < (select min(position) from permission_change_readers
             where seen_at > now() - make_interval(secs => $1))
   or created_at < now() - make_interval(secs => $1 * 24)
