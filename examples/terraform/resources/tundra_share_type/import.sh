# Import a share type by its ID (the credential stays unset until credential_version changes).
terraform import tundra_share_type.cephfs 0190b3c4-0000-7000-8000-000000000001
