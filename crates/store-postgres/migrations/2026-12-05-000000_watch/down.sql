DROP TRIGGER watch_step ON jobs;
DROP TRIGGER watch_plan ON jobs;
DROP FUNCTION watch_count_update();
DROP FUNCTION watch_count_insert();
DROP INDEX jobs_failed_order;
DROP TABLE watch_minutes;
DROP TABLE watch_hosts;
DROP FUNCTION watch_group(text);
DROP FUNCTION watch_host(text);
