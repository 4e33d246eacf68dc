# A shared network a site admin made (or one of the project's own).
data "tundra_network" "storage" {
  name = "ceph-public"
}

output "storage_vlan" {
  value = data.tundra_network.storage.segment
}
