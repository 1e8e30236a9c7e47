-- params: $1 bytea[] keys (sorted), $2 bigint[] user_ids (null where none, aligned with keys)
-- returns: key bytea, failures int, failure_age_s float8 (null: never failed),
--          success_age_s float8 (null: never succeeded)
-- Creates the counters that do not exist yet and locks all of them for the
-- transaction (in key order, so two attempts never wait on each other in a cycle):
-- concurrent attempts on one counter are decided one after the other.
insert into login_throttle as t (key, user_id)
select k, u from unnest($1::bytea[], $2::bigint[]) as a(k, u) order by k
on conflict (key) do update set updated_at = t.updated_at
returning t.key,
          t.failures,
          extract(epoch from now() - t.last_failure_at)::float8 as failure_age_s,
          extract(epoch from now() - t.last_success_at)::float8 as success_age_s
