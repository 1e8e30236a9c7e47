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
-- - no hashes and no sequential scans: a hash join or a hash aggregate reads
--   the whole of one side before the first row, and the planner, guessing how
--   the matches spread over the ids, picked one for a small role and a common
--   text (a million entries hashed, 4 s at 1M users, to answer one member).
--   Without them, two ranges in id order are merged and stop with the page;
-- - no parallel workers: a page reads a few rows, and a Gather starts its
--   workers (milliseconds) even under a branch that a one-time filter skips.
set local plan_cache_mode = force_custom_plan;
set local enable_bitmapscan = off;
set local max_parallel_workers_per_gather = 0;
set local enable_hashjoin = off;
set local enable_hashagg = off;
set local enable_seqscan = off
