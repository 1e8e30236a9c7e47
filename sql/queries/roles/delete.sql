-- params: $1 bigint id
-- returns: id, name, description of the deleted role
delete from roles where id = $1 returning id, name, description
