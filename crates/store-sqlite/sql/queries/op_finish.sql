-- Finishes a running attempt.
UPDATE ops
SET result_code = :result_code, result = :result, finished_at = :now
WHERE seq = :seq
