-- params: $1 bigint id
-- returns: id, name, description (row locked for the transaction)
select id, name, description from roles where id = $1 for update
