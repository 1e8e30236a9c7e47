-- params: none
-- returns: nothing. Until the transaction ends, each statement is planned for its
-- own parameter values. A text filter needs it: its best plan depends on the
-- text (select_page_by_email.sql), and after 5 executions PostgreSQL may switch a
-- prepared statement to one generic plan, the one that scans every user for a
-- text that few emails contain.
set local plan_cache_mode = force_custom_plan
