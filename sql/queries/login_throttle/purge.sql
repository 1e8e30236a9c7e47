-- params: $1 float8 older_than_s
-- returns: nothing
-- Forgets counters untouched for older_than_s (no failure to remember, no known
-- address to keep), so that guesses at random e-mails do not grow the table forever.
delete from login_throttle where updated_at < now() - make_interval(secs => $1)
