-- oncefetch ledger, schema version 5: a job records the media type its
-- manifest line expects (`content_type`, SPEC §1), checked against the
-- response's Content-Type and first bytes while streaming (SPEC §8).
--
-- Nullable, no default: jobs planned before this version expect no type
-- (`run --accept` may still give them one at run time). Adding a nullable
-- column rewrites no row.

ALTER TABLE jobs ADD COLUMN expected_content_type TEXT;
