-- users(filter: {emailContains}) reads `email ilike '%<escaped text>%'`: a trigram
-- index answers it from the rows that can match instead of a scan of every user.
-- pg_trgm ships with PostgreSQL (contrib; the embedded build and the official
-- images have it) and is a trusted extension since PostgreSQL 13, so the
-- database's owner may create it without being a superuser.
create extension if not exists pg_trgm;
create index users_email_trgm_idx on users using gin (email gin_trgm_ops);
