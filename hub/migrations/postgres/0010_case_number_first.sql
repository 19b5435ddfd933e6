-- A case is unique by (case_number, client_id) instead of (client_id, case_number): the same
-- rule, kept by one index that also finds a case by its number alone, so cases_case_number
-- goes. Every case paid an entry in both, and case numbers from many windows and platforms
-- arrive in no order either index keeps: each entry dirtied a page of its own.
ALTER TABLE cases
    DROP CONSTRAINT cases_client_id_case_number_key,
    ADD CONSTRAINT cases_case_number_client_id_key UNIQUE (case_number, client_id);
DROP INDEX cases_case_number;
