-- The metadata service answers a node only with its metadata token: a
-- secret written on the node's config drive at each deploy (only its
-- SHA-256 is kept here), so another machine that takes the node's address
-- cannot read its user data and keys.
ALTER TABLE nodes ADD COLUMN metadata_token_hash TEXT;
