-- params: $1 bigint[] user_ids (null: everyone)
-- An explicit change (the invalidatePermissionCache mutation): applied by every
-- instance like the triggers' (migration 0013).
select permission_changes_note($1::bigint[], null, $1::bigint[] is null)
