-- A public client's refresh tokens are bound to the DPoP key they were issued for (RFC 9449
-- section 5): the key's RFC 7638 thumbprint.
ALTER TABLE refresh_tokens ADD COLUMN jkt text;
