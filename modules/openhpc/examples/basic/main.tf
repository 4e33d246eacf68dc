# A Slurm cluster on two new networks with a CephFS /home: one login node
# and `compute_count` compute nodes. Needs the site's template published
# (../../template, once, by a site admin), a fabric and a share type.

terraform {
  required_version = ">= 1.9"
  required_providers {
    tundra = {
      source = "tundra/tundra"
    }
  }
}

provider "tundra" {}

variable "compute_count" {
  type    = number
  default = 3
}

variable "physical_network" {
  type        = string
  description = "The fabric the cluster's networks are made on."
  default     = "fabric"
}

variable "flavor" {
  type    = string
  default = "compute"
}

variable "image_id" {
  type        = string
  description = "Debian 12 with slurm-wlm and munge."
}

variable "share_type_id" {
  type        = string
  description = "The site's CephFS share type."
}

variable "public_key" {
  type = string
}

data "tundra_physical_network" "fabric" {
  name = var.physical_network
}

data "tundra_flavor" "node" {
  name = var.flavor
}

# Slurm's traffic on one network, storage on the other.
resource "tundra_network" "net" {
  for_each            = { slurm = "10.81.0.0/24", storage = "10.82.0.0/24" }
  name                = "hpc-${each.key}"
  physical_network_id = data.tundra_physical_network.fabric.id
}

resource "tundra_subnet" "net" {
  for_each   = { slurm = "10.81.0.0/24", storage = "10.82.0.0/24" }
  network_id = tundra_network.net[each.key].id
  name       = "hpc-${each.key}-v4"
  cidr       = each.value
}

resource "tundra_keypair" "me" {
  name       = "hpc"
  public_key = var.public_key
}

module "slurm" {
  source = "../.."

  name               = "hpc"
  compute_count      = var.compute_count
  login_flavor_id    = data.tundra_flavor.node.id
  compute_flavor_id  = data.tundra_flavor.node.id
  image_id           = var.image_id
  networks           = [tundra_network.net["slurm"].id, tundra_network.net["storage"].id]
  home_share_type_id = var.share_type_id
  home_size_gib      = 10
  keypair_id         = tundra_keypair.me.id
  partitions = [
    { name = "compute", default = true },
    { name = "short", max_time = "30:00" },
  ]

  depends_on = [tundra_subnet.net]
}

output "ssh_command" {
  value = module.slurm.ssh_command
}

output "compute_nodes" {
  value = module.slurm.compute_nodes
}

output "usage" {
  value = module.slurm.usage
}
