create table roles (
    id          bigint generated always as identity constraint roles_pkey primary key,
    name        text not null constraint roles_name_key unique,
    description text not null default '',
    created_at  timestamptz not null default now(),
    constraint roles_name_check check (name ~ '^[a-z][a-z0-9_-]{0,62}$')
);
