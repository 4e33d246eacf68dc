# A Dask cluster on a new network: one scheduler and `worker_count`
# workers. Needs the site's template published (../../template, once, by a
# site admin), a fabric and an image with the dask package set.

terraform {
  required_version = ">= 1.9"
  required_providers {
    tundra = {
      source = "tundra/tundra"
    }
  }
}

provider "tundra" {}

variable "worker_count" {
  type    = number
  default = 3
}

variable "physical_network" {
  type        = string
  description = "The fabric the cluster's network is made on."
  default     = "fabric"
}

variable "flavor" {
  type    = string
  default = "compute"
}

variable "image_id" {
  type        = string
  description = "Debian 12 with Dask (python3-distributed, python3-numpy, bokeh 2.4)."
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

resource "tundra_network" "dask" {
  name                = "dask"
  physical_network_id = data.tundra_physical_network.fabric.id
}

resource "tundra_subnet" "dask" {
  network_id = tundra_network.dask.id
  name       = "dask-v4"
  cidr       = "10.83.0.0/24"
}

resource "tundra_keypair" "me" {
  name       = "dask"
  public_key = var.public_key
}

module "dask" {
  source = "../.."

  name                = "dask"
  worker_count        = var.worker_count
  scheduler_flavor_id = data.tundra_flavor.node.id
  image_id            = var.image_id
  networks            = [tundra_network.dask.id]
  keypair_id          = tundra_keypair.me.id

  depends_on = [tundra_subnet.dask]
}

output "scheduler_address" {
  value = module.dask.scheduler_address
}

output "dashboard_url" {
  value = module.dask.dashboard_url
}

output "ssh_command" {
  value = module.dask.ssh_command
}

output "workers" {
  value = module.dask.workers
}

output "usage" {
  value = module.dask.usage
}
