-- params: $1 bigint id, $2 text name (null = keep), $3 text description (null = keep)
-- returns: id, name, description
update roles set name = coalesce($2, name), description = coalesce($3, description)
where id = $1
returning id, name, description
