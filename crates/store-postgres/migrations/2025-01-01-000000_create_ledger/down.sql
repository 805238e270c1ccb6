DROP VIEW op_rows;
DROP VIEW job_rows;
DROP FUNCTION free_of_other_leases(text[], text[]);
DROP FUNCTION epoch_action_key(text, text, bigint);
DROP FUNCTION key_json_string(text);
DROP TABLE artifacts;
DROP TABLE reconcile_mark;
DROP TABLE ops;
DROP TABLE jobs;
