-- params: $1 bigint[] user_ids
-- returns: user_id bigint, is_active boolean, role_ids bigint[], roles text[], codes text[],
--          not_before float8 (seconds since the epoch; null = none), revoked_sessions text[]
-- One row per existing user (unknown ids have no row); roles ordered by name,
-- permission codes deduplicated and sorted. not_before and revoked_sessions end
-- sessions (api/models.py UserAccess): access tokens issued before not_before, and
-- those of a refresh-token family revoked while one of its access tokens may still
-- be live (access_until, with a minute of margin for clock skew between the app
-- and the database).
select u.id as user_id,
       u.is_active,
       coalesce(r.role_ids, '{}') as role_ids,
       coalesce(r.roles, '{}') as roles,
       coalesce(p.codes, '{}') as codes,
       extract(epoch from u.tokens_not_before)::float8 as not_before,
       coalesce(s.sessions, '{}') as revoked_sessions
from users u
left join lateral (
    select array_agg(ro.id order by ro.name) as role_ids,
           array_agg(ro.name order by ro.name) as roles
    from user_roles ur
    join roles ro on ro.id = ur.role_id
    where ur.user_id = u.id
) r on true
left join lateral (
    select array_agg(distinct pe.code order by pe.code) as codes
    from user_roles ur
    join role_permissions rp on rp.role_id = ur.role_id
    join permissions pe on pe.id = rp.permission_id
    where ur.user_id = u.id
) p on true
left join lateral (
    select array_agg(distinct rt.family_id::text order by rt.family_id::text) as sessions
    from refresh_tokens rt
    where rt.user_id = u.id
      and rt.revoked_at is not null
      and rt.access_until > now() - interval '1 minute'
) s on true
where u.id = any($1::bigint[])
