-- params: $1 text key, $2 bigint ref
-- returns: nothing
insert into seed_mark (key, ref) values ($1, $2)
on conflict (key) do update set ref = excluded.ref
