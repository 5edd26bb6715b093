-- The MCP server's state, in its own schema (the connection's search_path); times are Unix
-- seconds.

-- MCP sessions: the principal each is bound to, the tokens `oauth_authenticate` holds for it
-- (sealed under a key derived from SECRET_KEY), and the transport's handshake.
CREATE TABLE sessions (
    id text PRIMARY KEY,
    subject text,
    held_nonce bytea,
    held_sealed bytea,
    -- rmcp's session state (the client's initialize parameters), so that another instance can
    -- continue a Streamable HTTP session.
    handshake text,
    last_seen bigint NOT NULL
);
CREATE INDEX sessions_last_seen ON sessions (last_seen);

-- Each user's data items, in the order they were made.
CREATE TABLE items (
    seq bigserial PRIMARY KEY,
    id text NOT NULL,
    subject text NOT NULL,
    name text NOT NULL,
    value double precision NOT NULL,
    created_at text NOT NULL,
    updated_at text NOT NULL,
    UNIQUE (subject, id)
);
CREATE INDEX items_subject ON items (subject, seq);

-- How many items each user holds: the per-user bound is checked and counted in one statement.
CREATE TABLE subject_counts (
    subject text PRIMARY KEY,
    items integer NOT NULL
);
