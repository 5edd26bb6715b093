-- Messages of the 2024-11-05 HTTP+SSE transport on their way to the instance holding the
-- stream: a message POSTed to any instance is queued here, in order, and taken by the stream's
-- instance (woken by NOTIFY mcp_sse_relay). Untaken rows are swept after a minute.
CREATE TABLE sse_relay (
    id bigserial PRIMARY KEY,
    session_id text NOT NULL,
    principal jsonb,
    body bytea NOT NULL,
    created_at bigint NOT NULL
);
CREATE INDEX sse_relay_session ON sse_relay (session_id, id);
CREATE INDEX sse_relay_created_at ON sse_relay (created_at);
