# A site template for Docker Swarm (Docker comes with the node image).
resource "tundra_cluster_template" "swarm" {
  name        = "docker-swarm"
  version     = 1
  kind        = "swarm"
  description = "Docker Swarm from Debian's docker.io"
}
