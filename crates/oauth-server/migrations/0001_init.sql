-- The authorization server's state, in its own schema (the connection's search_path). Secrets
-- are kept as SHA-256 hashes (codes, refresh tokens, client secrets, registration tokens) or
-- sealed (a rotation's answer, private signing keys); times are Unix seconds.

-- Dynamically registered clients (RFC 7591); `doc` is the client's metadata as JSON.
CREATE TABLE clients (
    id text PRIMARY KEY,
    doc jsonb NOT NULL,
    last_used bigint NOT NULL
);
CREATE INDEX clients_last_used ON clients (last_used);

-- Authorization codes (RFC 6749 section 4.1.2): single use; once spent, what they issued.
CREATE TABLE codes (
    hash bytea PRIMARY KEY,
    client_id text NOT NULL,
    redirect_uri text,
    challenge text NOT NULL,
    scope smallint NOT NULL,
    resource text,
    subject text NOT NULL,
    expires_at bigint NOT NULL,
    spent_at bigint,
    issued_jti text,
    issued_exp bigint,
    issued_family text
);
CREATE INDEX codes_expires_at ON codes (expires_at);

-- Refresh token families (OAuth 2.1 section 4.3.1): revoked together.
CREATE TABLE families (
    id text PRIMARY KEY,
    revoked boolean NOT NULL DEFAULT false,
    expires_at bigint NOT NULL
);
CREATE INDEX families_expires_at ON families (expires_at);

-- The access tokens issued within a family, revoked with it.
CREATE TABLE family_access (
    family text NOT NULL,
    jti text NOT NULL,
    exp bigint NOT NULL,
    PRIMARY KEY (family, jti)
);

-- Refresh tokens; a spent one keeps its rotation's answer, sealed under the token itself, for the
-- grace window, and stays until it expires so that a late reuse is recognised.
CREATE TABLE refresh_tokens (
    hash bytea PRIMARY KEY,
    family text NOT NULL,
    client_id text NOT NULL,
    subject text NOT NULL,
    scope smallint NOT NULL,
    audience text NOT NULL,
    expires_at bigint NOT NULL,
    spent_at bigint,
    sealed_nonce bytea,
    sealed_answer bytea
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

-- Revoked access tokens (RFC 7009), until they expire.
CREATE TABLE revoked_access (
    jti text PRIMARY KEY,
    exp bigint NOT NULL
);
CREATE INDEX revoked_access_exp ON revoked_access (exp);

-- The scopes each user approved for each client (a bit set).
CREATE TABLE consents (
    user_id text NOT NULL,
    client_id text NOT NULL,
    scope smallint NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- The sign-in throttle's counters, per `user:<name>` and `addr:<ip>`.
CREATE TABLE sign_in_attempts (
    key text PRIMARY KEY,
    failures integer NOT NULL,
    last_attempt bigint NOT NULL,
    in_flight integer NOT NULL,
    lease_until bigint NOT NULL
);

-- Signing keys, shared by every instance: the private half sealed under a key derived from
-- SECRET_KEY. The newest generation whose `sign_from` has come signs; every key not retired is
-- published.
CREATE TABLE signing_keys (
    generation bigint PRIMARY KEY,
    kid text NOT NULL,
    sealed_nonce bytea NOT NULL,
    sealed_key bytea NOT NULL,
    sign_from bigint NOT NULL,
    retire_at bigint
);
