-- Cache invalidations written in the mutation's own transaction and deleted once
-- Redis has applied them. A row that outlives its mutation means Redis missed an
-- invalidation: it is replayed before the cache is trusted again.
create table cache_outbox (
    id         bigint generated always as identity constraint cache_outbox_pkey primary key,
    user_ids   bigint[],           -- null: every user
    created_at timestamptz not null default now()
);
