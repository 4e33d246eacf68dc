data "tundra_network" "data" {
  name = "data"
}

data "tundra_subnet" "data" {
  name = "data-v4"
}

# A port with a fixed address that outlives the nodes using it.
resource "tundra_port" "head" {
  network_id = data.tundra_network.data.id
  name       = "slurm-head"

  fixed_ips = [{
    subnet_id = data.tundra_subnet.data.id
    address   = "10.30.0.10"
  }]
}

data "tundra_flavor" "compute" {
  name = "compute"
}

data "tundra_image" "rocky" {
  name = "rocky-9"
}

# The node uses it: while the node is active its switch port is in the network's VLAN.
resource "tundra_node" "head" {
  name      = "slurm-head"
  flavor_id = data.tundra_flavor.compute.id
  image_id  = data.tundra_image.rocky.id
  networks  = [{ port_id = tundra_port.head.id }]
}
