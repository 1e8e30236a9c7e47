-- params: $1 int user_count
-- returns: id bigint (the users userN@example.com, N = 1..$1, created now; an
-- address that exists already, whoever made it, is skipped and uses up no id)
insert into users (email, display_name, avatar_url)
select format('user%s@example.com', g), format('User %s', g),
       format('https://avatars.example.com/%s.png', g)
from generate_series(1, $1) g
where not exists (select 1 from users u where lower(u.email) = format('user%s@example.com', g))
returning id
