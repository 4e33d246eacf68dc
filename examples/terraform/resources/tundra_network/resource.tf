data "tundra_physical_network" "fabric" {
  name = "fabric"
}

# A project network: the next free VLAN of the fabric's range.
resource "tundra_network" "data" {
  name                = "data"
  physical_network_id = data.tundra_physical_network.fabric.id
}

output "vlan" {
  value = tundra_network.data.segment
}
