-- params: $1 bigint after_id, $2 int lim
-- returns: id bigint (active users, by id)
select id from users where id > $1 and is_active order by id limit $2
