create table permissions (
    id          bigint generated always as identity constraint permissions_pkey primary key,
    code        text not null constraint permissions_code_key unique,
    description text not null default '',
    created_at  timestamptz not null default now(),
    constraint permissions_code_check check (code ~ '^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$')
);
