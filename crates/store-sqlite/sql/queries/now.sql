-- The store clock: this host's wall clock in milliseconds, as SQLite reads it.
SELECT CAST(round(unixepoch('subsec') * 1000) AS INTEGER)
