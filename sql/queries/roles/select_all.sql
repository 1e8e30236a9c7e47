-- returns: id, name, description
select id, name, description from roles order by name
