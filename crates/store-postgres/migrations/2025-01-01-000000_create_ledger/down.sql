DROP VIEW op_rows;
DROP VIEW job_rows;
DROP FUNCTION url_is_free(text, text);
DROP TABLE artifacts;
DROP TABLE ops;
DROP TABLE jobs;
