-- Client keys (issue 22): a scope for keys a public page or app holds (OFREP evaluation, events and the
-- client change stream only), each with the browser origins it may be used from (none: the server's
-- FLAGD_CORS_ORIGINS).

ALTER TABLE api_keys DROP CONSTRAINT api_keys_scope_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scope_check CHECK (scope IN ('admin', 'sdk', 'results', 'client'));
ALTER TABLE api_keys ADD COLUMN allowed_origins text[] NOT NULL DEFAULT '{}';
ALTER TABLE api_keys ADD CONSTRAINT api_keys_origins_client_only
    CHECK (scope = 'client' OR cardinality(allowed_origins) = 0);
