-- A client's consents are deleted with it (RFC 7592 delete, the idle-client sweep): found by
-- client, not by user.
CREATE INDEX consents_client_id ON consents (client_id);
