# A node another configuration manages, by name in the provider's project.
data "tundra_node" "head" {
  name = "slurm-head"
}

output "head_address" {
  value = data.tundra_node.head.access_ip
}
