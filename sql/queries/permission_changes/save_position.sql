-- params: $1 text reader name, $2 bigint position (an xid8)
-- A position only moves forward.
insert into permission_change_readers as r (name, position) values ($1, $2::bigint::text::xid8)
on conflict (name) do update
set position = greatest(r.position, excluded.position), seen_at = now()
