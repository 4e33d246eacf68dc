# A cluster another configuration manages, by name in the provider's project.
data "tundra_cluster" "sip" {
  name = "sip"
}

output "sip_endpoint" {
  value = data.tundra_cluster.sip.endpoint
}
