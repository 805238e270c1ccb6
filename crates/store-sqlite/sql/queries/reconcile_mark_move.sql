-- Moves the reconcile mark forward to the cutoff (never back).
UPDATE reconcile_mark SET freed_through = :cutoff WHERE id = 1 AND freed_through < :cutoff
