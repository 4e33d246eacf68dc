# JupyterHub as one appliance: a hub node answering on a plain address of
# a network you choose (no load balancer), users' servers spawned on it as
# the users themselves, homes on an optional share.

locals {
  hub_network = var.hub_network_id != null ? var.hub_network_id : try(var.networks[0], "")
  # The other networks, in order (the hub's network comes first), and the
  # Slurm network when the hub spawns onto Slurm (its servers call the hub
  # there).
  slurm_network  = try(var.slurm.network_id, null)
  other_networks = distinct(concat([for n in var.networks : n if n != local.hub_network], local.slurm_network == null || local.slurm_network == local.hub_network ? [] : [local.slurm_network]))
}

data "tundra_appliance_template" "jupyterhub" {
  name       = var.template_name
  version    = var.template_version
  project_id = var.project_id
}

resource "tundra_appliance" "jupyterhub" {
  project_id  = var.project_id
  name        = var.name
  template_id = data.tundra_appliance_template.jupyterhub.id
  keypair_id  = var.keypair_id
  parameters = {
    hub_flavor      = var.hub_flavor_id
    image           = var.image_id
    hub_network     = local.hub_network
    networks        = local.other_networks
    homes           = var.homes_share_id != null ? var.homes_share_id : try(var.slurm.home_share_id, null)
    authenticator   = var.authenticator
    slurm           = try(var.slurm.appliance_id, null)
    slurm_partition = var.slurm_partition == null ? "" : var.slurm_partition
    slurm_cpus      = tostring(var.slurm_cpus)
    slurm_time      = var.slurm_time_limit
  }
}
