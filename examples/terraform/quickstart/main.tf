# Tundra quickstart: `scripts/quickstart.sh` starts a lab site and tundrad,
# applies examples/terraform/site (the admin's machines and a public flavor),
# then this configuration as the bootstrap admin (TUNDRA_TOKEN from the data
# dir's admin-token file): a project, a keypair, an image, and 4 nodes kept
# in one island on a data network of their own — deployed with the image
# and a config drive, their switch ports moved into the network's VLAN —
# with their addresses as outputs.

terraform {
  required_providers {
    tundra = {
      source = "tundra/tundra"
    }
  }
}

variable "endpoint" {
  description = "Base URL of tundrad (the quickstart script passes the one it started)."
  type        = string
  default     = "http://127.0.0.1:8180"
}

variable "image_path" {
  description = "A local raw disk image with a partition table (the quickstart script builds a Debian one)."
  type        = string
}

variable "public_key" {
  description = "SSH public key for the keypair."
  type        = string
}

variable "node_count" {
  description = "How many nodes."
  type        = number
  default     = 4
}

variable "role" {
  description = "Metadata every node carries (`meta.role` in meta_data.json); changed in place."
  type        = string
  default     = "worker"
}

provider "tundra" {
  endpoint = var.endpoint
}

resource "tundra_project" "demo" {
  name        = "demo"
  description = "Quickstart project"
}

data "tundra_flavor" "compute" {
  name = "compute"
}

resource "tundra_keypair" "me" {
  project_id = tundra_project.demo.id
  name       = "me"
  public_key = var.public_key
}

resource "tundra_image" "demo" {
  project_id  = tundra_project.demo.id
  name        = "demo-disk"
  disk_format = "raw"
  sha256      = filesha256(var.image_path)
  source_path = var.image_path
}

data "tundra_physical_network" "fabric" {
  name = "fabric"
}

# The workers' own network: the next free VLAN of the fabric.
resource "tundra_network" "data" {
  project_id          = tundra_project.demo.id
  name                = "data"
  physical_network_id = data.tundra_physical_network.fabric.id
}

resource "tundra_subnet" "data" {
  network_id = tundra_network.data.id
  name       = "data-v4"
  cidr       = "10.50.0.0/24"
}

resource "tundra_node" "worker" {
  count      = var.node_count
  project_id = tundra_project.demo.id
  name       = "worker-${count.index}"
  flavor_id  = data.tundra_flavor.compute.id
  image_id   = tundra_image.demo.id
  keypair_id = tundra_keypair.me.id

  metadata = {
    role = var.role
  }

  # eth1 on the data network (addresses from its subnet, on the config drive).
  networks   = [{ network_id = tundra_network.data.id }]
  depends_on = [tundra_subnet.data]

  # All in one island (one fast fabric), wherever there is room for them.
  placement = {
    group  = "workers"
    policy = "affinity"
  }
}

output "nodes" {
  value = {
    for n in tundra_node.worker : n.name => "${n.status}, ${n.access_ip}, data ${n.network_ports[0].address} (VLAN ${tundra_network.data.segment}), island ${n.location.island} rack ${n.location.rack}"
  }
}

output "worker_0_ip" {
  description = "worker-0's address on the provisioning network: ssh debian@ it with the keypair's key."
  value       = try(tundra_node.worker[0].access_ip, null)
}

output "keypair_fingerprint" {
  value = tundra_keypair.me.fingerprint
}
