data "tundra_physical_network" "fabric" {
  name = "fabric"
}

output "fabric_mtu" {
  value = data.tundra_physical_network.fabric.mtu
}
