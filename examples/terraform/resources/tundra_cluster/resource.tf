variable "template_id" {
  type        = string
  description = "A cluster template (tundra_cluster_template), e.g. the site's Docker Swarm one."
}

data "tundra_flavor" "compute" {
  name = "compute"
}

data "tundra_image" "docker" {
  name = "debian-12-docker"
}

data "tundra_network" "data_25g" {
  name = "data-25g"
}

data "tundra_network" "hpc_100g" {
  name = "hpc-100g"
}

# One manager and three workers, each on two networks; Swarm's traffic
# goes over the 100G one. Raise count to add workers in place; lower it
# and tundrad drains, removes and cleans the nodes it gives up.
resource "tundra_cluster" "sip" {
  name        = "sip"
  template_id = var.template_id

  node_groups = [
    {
      name               = "managers"
      role               = "control_plane"
      flavor_id          = data.tundra_flavor.compute.id
      image_id           = data.tundra_image.docker.id
      count              = 1
      networks           = [data.tundra_network.data_25g.id, data.tundra_network.hpc_100g.id]
      cluster_network_id = data.tundra_network.hpc_100g.id
    },
    {
      name               = "workers"
      role               = "worker"
      flavor_id          = data.tundra_flavor.compute.id
      image_id           = data.tundra_image.docker.id
      count              = 3
      networks           = [data.tundra_network.data_25g.id, data.tundra_network.hpc_100g.id]
      cluster_network_id = data.tundra_network.hpc_100g.id
    },
  ]

  labels = { team = "sip" }
}

output "swarm_endpoint" {
  value = tundra_cluster.sip.endpoint
}
