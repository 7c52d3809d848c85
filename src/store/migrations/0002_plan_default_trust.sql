-- A tenant's default trust level: what a request without "trust_level" runs at (API.md).
-- NULL: not set, the server derives it from max_trust_level.
ALTER TABLE tenants ADD COLUMN default_trust_level TEXT;
