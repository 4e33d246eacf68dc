data "tundra_flavor" "compute" {
  name = "compute"
}

data "tundra_image" "rocky" {
  name = "rocky-9"
}

data "tundra_physical_network" "fabric" {
  name = "fabric"
}

resource "tundra_network" "data" {
  name                = "workers"
  physical_network_id = data.tundra_physical_network.fabric.id
}

resource "tundra_subnet" "data" {
  network_id = tundra_network.data.id
  name       = "workers-v4"
  cidr       = "10.40.0.0/24"
}

resource "tundra_keypair" "me" {
  name       = "me"
  public_key = file("~/.ssh/id_ed25519.pub")
}

# Four workers on one island (one fast fabric), packed into as few racks as possible.
resource "tundra_node" "worker" {
  count      = 4
  name       = "worker-${count.index}"
  flavor_id  = data.tundra_flavor.compute.id
  image_id   = data.tundra_image.rocky.id
  keypair_id = tundra_keypair.me.id
  user_data  = "#cloud-config\npackages: [slurm-slurmd]\n"

  metadata = {
    role = "worker"
  }

  # The data network: this node's switch port moves into its VLAN while the node is active.
  networks = [{ network_id = tundra_network.data.id }]

  placement = {
    group  = "workers"
    policy = "affinity"
  }

  timeouts {
    create = "45m"
  }
}

output "workers" {
  value = { for n in tundra_node.worker : n.name => n.access_ip }
}
