-- Finishes per minute and host from :since on (a range of the key).
SELECT minute, host, succeeded, skipped, failed, bytes
FROM watch_minutes
WHERE minute >= :since
ORDER BY minute
