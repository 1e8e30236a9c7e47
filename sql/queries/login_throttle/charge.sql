-- params: $1 bytea[] keys, $2 float8 reset_s
-- returns: nothing
-- Counts an attempt as a failure before its password is checked (a success refunds
-- it: settle.sql), so that concurrent guesses cannot all pass one check. A counter
-- whose last failure is older than reset_s starts again from this one.
update login_throttle
set failures = case when last_failure_at is null or last_failure_at < now() - make_interval(secs => $2)
                    then 1 else failures + 1 end,
    last_failure_at = now(),
    updated_at = now()
where key = any($1::bytea[])
