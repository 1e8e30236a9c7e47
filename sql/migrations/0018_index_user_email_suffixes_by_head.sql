-- The page of a common text in O(page / the text's share of the emails that hold
-- its first four characters), in user id order.
--
-- 0017 reads a rare text's page from its suffixes, but a common one (more than a
-- few thousand suffixes) from a walk of users_pkey that tests every email: the
-- walk reads ~page / (the text's share of ALL users) rows, and with a role too
-- ~page / (the share of users holding both), 50,000 rows at 1M users for a
-- text and a role that each hold a tenth of the users but rarely together
-- (bench/README.md, scale).
--
-- The first four characters of every suffix are the email's 4-character
-- windows. Keyed by them, then by user id, the emails holding a text's first
-- four characters are one range of this index in user id order: the walk reads
-- only those (each email rechecked against the whole text), and beside a
-- role's members (user_roles_role_id_user_id_idx, also in user id order) it is
-- a merge of two ordered ranges that stops when the page is full
-- (sql/queries/users/select_page_by_email.sql, _and_role.sql).
--
-- Size: one entry per suffix, ~0.66 GB at 1M users (the suffixes' key: 1.3 GB);
-- built in ~30 s at 1M users on a 2-core machine, during which writes to users'
-- emails wait.
create index user_email_suffixes_head_idx
    on user_email_suffixes (left(suffix, 4), user_id);
analyze user_email_suffixes;
