-- Records a job's expectations (plan --update-expected).
UPDATE jobs
SET expected_sha256 = :sha256, expected_size = :size, expected_content_type = :content_type
WHERE planned_seq = :planned_seq
