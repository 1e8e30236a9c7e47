-- One row per issued refresh token. A login starts a family; each refresh spends
-- its token and issues the next one in the same family. Reusing a spent token
-- revokes the family.
create table refresh_tokens (
    jti         uuid constraint refresh_tokens_pkey primary key,
    family_id   uuid not null,
    user_id     bigint not null constraint refresh_tokens_user_id_fkey references users (id) on delete cascade,
    expires_at  timestamptz not null,
    used_at     timestamptz,
    revoked_at  timestamptz,
    created_at  timestamptz not null default now()
);
create index refresh_tokens_family_id_idx on refresh_tokens (family_id);
create index refresh_tokens_user_id_idx on refresh_tokens (user_id);
