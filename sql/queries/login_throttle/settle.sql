-- params: $1 bytea pair_key, $2 bytea[] other_keys
-- returns: nothing
-- A successful password check: the (account, address) pair starts again from zero
-- and is remembered as a known address of the account; the attempt charged to the
-- other counters is refunded (their earlier failures stay).
update login_throttle
set failures = case when key = $1 then 0 else greatest(failures - 1, 0) end,
    last_success_at = case when key = $1 then now() else last_success_at end,
    updated_at = now()
where key = $1 or key = any($2::bytea[])
