-- params: $1 bigint before_id (0 = newest), $2 int lim
-- returns: id, actor_id, action, target_type, target_id, before, after, created_at (newest first)
-- One range of audit_log_pkey in every plan: the bound is an expression of $1,
-- not an optional condition (`$1 = 0 or id < $1`), whose generic plan (after 5
-- executions) would walk the log from its newest entry down to the page.
select id, actor_id, action, target_type, target_id, before, after, created_at
from audit_log
where id < coalesce(nullif($1::bigint, 0), 9223372036854775807)
order by id desc
limit $2
