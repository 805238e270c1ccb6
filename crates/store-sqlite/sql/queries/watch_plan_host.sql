-- Counts :jobs new PLANNED jobs under :host (`oncefetch_core::url::host_port`
-- of their canonical URL): the plan batch counted them as it inserted them.
INSERT INTO watch_hosts (host, grp, jobs, bytes) VALUES (:host, 'PLANNED', :jobs, 0)
ON CONFLICT (host, grp) DO UPDATE SET jobs = jobs + excluded.jobs
