-- params: $1 bigint actor_id, $2 text action, $3 text target_type, $4 text target_id, $5 jsonb before, $6 jsonb after
-- returns: nothing
insert into audit_log (actor_id, action, target_type, target_id, before, after)
values ($1, $2, $3, $4, $5, $6)
