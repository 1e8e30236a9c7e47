-- params: $1 bigint id
-- returns: password_hash text, is_active boolean (row locked for the transaction)
-- A login re-reads what it verified under the user's row lock, in the transaction
-- that issues its tokens: a password change or deactivation that committed since
-- the check wins, and a concurrent one waits for the tokens to be visible to it.
-- "no key update": it still excludes other logins, refreshes and password changes
-- of the user, but not the key-share lock of a foreign key (a new login_throttle
-- row of the user), which the transaction may wait for in turn.
select password_hash, is_active from users where id = $1 for no key update
