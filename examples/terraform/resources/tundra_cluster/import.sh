# Import a cluster by its ID.
terraform import tundra_cluster.sip 0190b3c4-0000-7000-8000-000000000004
