-- params: none
-- returns: key text, ref bigint (what the seed has done once)
select key, ref from seed_mark
