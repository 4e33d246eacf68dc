# Import a cluster template by its ID.
terraform import tundra_cluster_template.swarm 0190b3c4-0000-7000-8000-000000000003
