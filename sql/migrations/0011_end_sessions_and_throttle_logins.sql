-- Sessions end when they should (issue 11, R5), and password guessing is throttled
-- per account and per client address instead of locking accounts (R7).

-- Access tokens issued before this instant no longer count (set by a password change).
alter table users add column tokens_not_before timestamptz;

-- Until when the access token issued with this refresh token may be used (its
-- expiry plus the leeway): a revoked family is listed in its user's permission
-- entry while one of its access tokens may still be live. Rows from before this
-- migration have none: their access tokens carry no session id and are refused.
alter table refresh_tokens add column access_until timestamptz;
create index refresh_tokens_revoked_user_id_idx on refresh_tokens (user_id, access_until)
    where revoked_at is not null;

-- Failed password checks, counted per (account, client address), per client
-- address and per account (api/sessions.py). key: sha256 of the counter's kind
-- and subject, so that no e-mail or address is stored in clear. user_id: the
-- account, when the counter is a known account's (null for addresses and unknown
-- e-mails); its counters go with it.
create table login_throttle (
    key             bytea constraint login_throttle_pkey primary key,
    user_id         bigint constraint login_throttle_user_id_fkey references users (id) on delete cascade,
    failures        integer not null default 0,
    last_failure_at timestamptz,
    last_success_at timestamptz,
    updated_at      timestamptz not null default now()
);
create index login_throttle_user_id_idx on login_throttle (user_id);
create index login_throttle_updated_at_idx on login_throttle (updated_at);

-- users.failed_logins and users.locked_until (0009) are no longer read or written;
-- they stay until no running instance of an older version reads them.
comment on column users.failed_logins is 'unused since 0011 (login_throttle)';
comment on column users.locked_until is 'unused since 0011 (login_throttle)';
