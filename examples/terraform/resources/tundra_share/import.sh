# Import a share by its ID.
terraform import tundra_share.data 0190b3c4-0000-7000-8000-000000000002
