-- params: $1 bigint id, $2 int max_failures, $3 int lockout_seconds
-- returns: nothing; after max_failures consecutive failures the account is locked for lockout_seconds
update users
set failed_logins = case when failed_logins + 1 >= $2 then 0 else failed_logins + 1 end,
    locked_until = case when failed_logins + 1 >= $2
                        then now() + make_interval(secs => $3) else locked_until end
where id = $1
