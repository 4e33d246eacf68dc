# Import a share snapshot by its ID.
terraform import tundra_share_snapshot.before_run 0190b3c4-0000-7000-8000-000000000004
