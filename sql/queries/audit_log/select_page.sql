-- params: $1 bigint before_id (0 = newest), $2 int lim
-- returns: id, actor_id, action, target_type, target_id, before, after, created_at (newest first)
select id, actor_id, action, target_type, target_id, before, after, created_at
from audit_log
where $1::bigint = 0 or id < $1::bigint
order by id desc
limit $2
