# JupyterHub on a new network with a CephFS share for the users' homes.
# Needs the site's template published (../../template, once, by a site
# admin), a fabric, a share type and an image with the jupyterhub package
# set. `authenticator = "dummy"` is for trying it out and for tests only.

terraform {
  required_version = ">= 1.9"
  required_providers {
    tundra = {
      source = "tundra/tundra"
    }
  }
}

provider "tundra" {}

variable "physical_network" {
  type        = string
  description = "The fabric the hub's network is made on."
  default     = "fabric"
}

variable "flavor" {
  type    = string
  default = "compute"
}

variable "image_id" {
  type        = string
  description = "Debian 12 with jupyterhub and python3-ipykernel."
}

variable "share_type_id" {
  type        = string
  description = "The site's CephFS share type."
}

variable "authenticator" {
  type        = string
  description = "pam, or dummy to try it out (tests only: one generated password for any name)."
  default     = "pam"
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

resource "tundra_network" "users" {
  name                = "jupyter"
  physical_network_id = data.tundra_physical_network.fabric.id
}

resource "tundra_subnet" "users" {
  network_id = tundra_network.users.id
  name       = "jupyter-v4"
  cidr       = "10.84.0.0/24"
}

resource "tundra_share" "homes" {
  name          = "jupyter-homes"
  share_type_id = var.share_type_id
  size_gib      = 1
}

resource "tundra_keypair" "me" {
  name       = "jupyter"
  public_key = var.public_key
}

module "jupyter" {
  source = "../.."

  name           = "jupyter"
  hub_flavor_id  = data.tundra_flavor.node.id
  image_id       = var.image_id
  networks       = [tundra_network.users.id]
  homes_share_id = tundra_share.homes.id
  authenticator  = var.authenticator
  keypair_id     = tundra_keypair.me.id

  depends_on = [tundra_subnet.users]
}

output "hub_url" {
  value = module.jupyter.hub_url
}

output "api_url" {
  value = module.jupyter.api_url
}

output "ssh_command" {
  value = module.jupyter.ssh_command
}

output "usage" {
  value = module.jupyter.usage
}
