-- The last seq of the ledger (0 when empty).
SELECT COALESCE(MAX(seq), 0) FROM ops
