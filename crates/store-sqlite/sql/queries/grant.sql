-- Grants a job: LEASED under the next epoch (the caller read the row in this
-- transaction and builds the granted job from it).
UPDATE jobs
SET state = 'LEASED', epoch = :epoch, lease_owner = :owner, lease_expires_at = :expires_at
WHERE planned_seq = :planned_seq
