-- params: $1 text email, $2 text password_hash
-- returns: id bigint (no row when the e-mail is already taken)
insert into users (email, display_name, password_hash)
select $1, 'Administrator', $2
where not exists (select 1 from users where lower(email) = lower($1))
returning id
