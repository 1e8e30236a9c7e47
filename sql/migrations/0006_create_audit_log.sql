create table audit_log (
    id          bigint generated always as identity constraint audit_log_pkey primary key,
    actor_id    bigint constraint audit_log_actor_id_fkey references users (id) on delete set null,
    action      text not null,
    target_type text not null,
    target_id   text not null,
    before      jsonb,
    after       jsonb,
    created_at  timestamptz not null default now()
);
create index audit_log_target_idx on audit_log (target_type, target_id);
