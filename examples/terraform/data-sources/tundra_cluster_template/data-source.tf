# The site's Docker Swarm template, its newest version.
data "tundra_cluster_template" "swarm" {
  name = "docker-swarm"
}

output "swarm_template" {
  value = "${data.tundra_cluster_template.swarm.name} v${data.tundra_cluster_template.swarm.version}"
}
