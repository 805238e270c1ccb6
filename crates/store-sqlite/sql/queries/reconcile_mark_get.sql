-- The reconcile mark: leases that expired at or before it were freed.
SELECT freed_through FROM reconcile_mark WHERE id = 1
