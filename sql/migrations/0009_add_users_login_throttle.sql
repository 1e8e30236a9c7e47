-- Per-account login throttle, kept in PostgreSQL so that it holds with Redis down.
alter table users
    add column failed_logins integer not null default 0,
    add column locked_until  timestamptz;
