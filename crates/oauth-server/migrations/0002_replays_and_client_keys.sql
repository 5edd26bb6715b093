-- Identifiers used once until they expire (the jti of RFC 7523 client assertions), as a SHA-256
-- of their namespace, issuer and value.
CREATE TABLE used_jtis (
    key bytea PRIMARY KEY,
    expires_at bigint NOT NULL
);
CREATE INDEX used_jtis_expires_at ON used_jtis (expires_at);
