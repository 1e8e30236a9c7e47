create table users (
    id            bigint generated always as identity constraint users_pkey primary key,
    email         text not null,
    display_name  text not null default '',
    avatar_url    text,
    password_hash text,
    is_active     boolean not null default true,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    constraint users_email_check check (email like '%_@_%' and length(email) <= 254)
);
-- email is unique case-insensitively; lookups use lower(email)
create unique index users_email_lower_key on users (lower(email));
create index users_is_active_idx on users (is_active, id);
