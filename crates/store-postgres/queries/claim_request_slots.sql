-- Claims $3 request slots, $2 milliseconds apart, for host $1 by the budget
-- rule (RequestSlots::claim): they start at the later of the host's next
-- free time and now (the store clock), and the host's next free time moves
-- past them. One statement: concurrent claims of one host queue on its row.
-- Returns the new next free time, from which the caller rebuilds the slots
-- (RequestSlots::ending_at).
INSERT INTO host_budget AS b (host, next_at_ms)
VALUES ($1, floor(extract(epoch FROM now()) * 1000)::bigint + $2::bigint * $3::bigint)
ON CONFLICT (host) DO UPDATE
SET next_at_ms = greatest(b.next_at_ms, floor(extract(epoch FROM now()) * 1000)::bigint) + $2::bigint * $3::bigint
RETURNING next_at_ms AS n
