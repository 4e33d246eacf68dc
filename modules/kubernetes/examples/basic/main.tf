# Kubernetes on two new networks (cluster traffic on the second), with a
# CephFS share offered to pods as the claim `data`. Needs the site's k3s
# template published (../../template, once, by a site admin, with its
# air-gap bundle), a fabric and a share type. With `kubectl` set (for
# example "k3s kubectl"), apply also creates the share's volume and claim.

terraform {
  required_version = ">= 1.10"
  required_providers {
    tundra = {
      source = "tundra/tundra"
    }
  }
}

provider "tundra" {}

variable "worker_count" {
  type    = number
  default = 2
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
  description = "Debian 12 with a CephFS client (ceph-common)."
}

variable "share_type_id" {
  type        = string
  description = "The site's CephFS share type."
}

variable "kubectl" {
  type    = string
  default = null
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

resource "tundra_network" "net" {
  for_each            = { data = "10.85.0.0/24", kube = "10.86.0.0/24" }
  name                = "k8s-${each.key}"
  physical_network_id = data.tundra_physical_network.fabric.id
}

resource "tundra_subnet" "net" {
  for_each   = { data = "10.85.0.0/24", kube = "10.86.0.0/24" }
  network_id = tundra_network.net[each.key].id
  name       = "k8s-${each.key}-v4"
  cidr       = each.value
}

resource "tundra_share" "data" {
  name          = "k8s-data"
  share_type_id = var.share_type_id
  size_gib      = 1
}

resource "tundra_keypair" "me" {
  name       = "k8s"
  public_key = var.public_key
}

module "k8s" {
  source = "../.."

  name                    = "k8s"
  image_id                = var.image_id
  control_plane_flavor_id = data.tundra_flavor.node.id
  worker_groups           = [{ name = "workers", count = var.worker_count }]
  networks                = [tundra_network.net["data"].id, tundra_network.net["kube"].id]
  cluster_network_id      = tundra_network.net["kube"].id
  shares                  = [{ name = "data", share_id = tundra_share.data.id }]
  kubectl                 = var.kubectl
  kubeconfig              = var.kubectl == null ? null : ephemeral.tundra_cluster_credentials.admin.kubeconfig
  keypair_id              = tundra_keypair.me.id

  depends_on = [tundra_subnet.net]
}

# An administrator's kubeconfig for this run only (an hour), never in
# state: what the module applies the share's volume with. A Kubernetes
# provider's configuration may take it too.
ephemeral "tundra_cluster_credentials" "admin" {
  cluster_id  = module.k8s.cluster_id
  ttl_seconds = 3600
}

output "endpoint" {
  value = module.k8s.endpoint
}

output "nodes" {
  value = module.k8s.nodes
}

output "volumes_manifest" {
  value = module.k8s.volumes_manifest
}
