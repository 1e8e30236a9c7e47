create table role_permissions (
    role_id       bigint not null constraint role_permissions_role_id_fkey references roles (id) on delete cascade,
    permission_id bigint not null constraint role_permissions_permission_id_fkey references permissions (id) on delete cascade,
    constraint role_permissions_pkey primary key (role_id, permission_id)
);
create index role_permissions_permission_id_idx on role_permissions (permission_id, role_id);
