variable "cluster_id" {
  type        = string
  description = "A cluster (tundra_cluster.id)."
}

# An hour's access to the Swarm managers, for this run only (never in state).
ephemeral "tundra_cluster_credentials" "swarm" {
  cluster_id  = var.cluster_id
  ttl_seconds = 3600
}

# e.g. for the Docker provider (docker over SSH with the certificate):
#   host     = ephemeral.tundra_cluster_credentials.swarm.endpoint
#   ssh_opts = ["-i", "KEY_FILE", "-o", "CertificateFile=CERT_FILE"]
# or on a workstation: save private_key as KEY_FILE (0600), certificate as
# KEY_FILE-cert.pub, and DOCKER_HOST=<endpoint> docker node ls.
