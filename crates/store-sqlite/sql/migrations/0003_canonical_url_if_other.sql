-- oncefetch ledger, schema version 3: a job stores its canonical URL only
-- when it differs from the URL as given.
--
-- Most manifests give URLs that are canonical already, so every row held the
-- same string twice; planning wrote it twice to the WAL and again at each
-- checkpoint. `canonical_url_if_other` keeps the canonical URL when it
-- differs and an empty BLOB otherwise (no text, so even an empty canonical
-- URL stays distinct; one header byte, no body); `canonical_url` becomes a
-- VIRTUAL generated column (no storage), which the URL indexes still index
-- and every query still reads and filters by.

DROP INDEX jobs_leased_url;
DROP INDEX jobs_success_url;

ALTER TABLE jobs RENAME COLUMN canonical_url TO canonical_url_if_other;

UPDATE jobs SET canonical_url_if_other = x'' WHERE canonical_url_if_other = url;

-- A BLOB never equals a TEXT value, so only the marker reads the URL. (No
-- function call here: one in a column that an index covers makes every
-- multi-row INSERT keep a statement journal, half as slow again.)
ALTER TABLE jobs ADD COLUMN canonical_url TEXT GENERATED ALWAYS AS (
    CASE canonical_url_if_other WHEN x'' THEN url ELSE canonical_url_if_other END) VIRTUAL;

-- As in schema version 1, over the generated column.
CREATE INDEX jobs_leased_url ON jobs (canonical_url) WHERE lease_expires_at IS NOT NULL;
CREATE INDEX jobs_success_url ON jobs (canonical_url) WHERE state = 'SUCCESS';
