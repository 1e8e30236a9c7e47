-- params: none
-- returns: nothing. Until the transaction ends:
-- - each statement is planned for its own parameter values: the best plan of a
--   text filter depends on the text (select_page_by_email.sql), and after 5
--   executions PostgreSQL may switch a prepared statement to one generic plan,
--   the one that scans every user for a text that few emails contain;
-- - no bitmap scans: a bitmap reads every row of its range before the first one
--   is returned, so the suffixes of a common text (a million for `example`)
--   would all be read to learn that there are more than a few thousand. An
--   index scan stops there. The page of a common text is then a walk by id;
-- - no parallel workers: a page reads a few rows, and a Gather starts its
--   workers (milliseconds) even under a branch that a one-time filter skips.
set local plan_cache_mode = force_custom_plan;
set local enable_bitmapscan = off;
set local max_parallel_workers_per_gather = 0
