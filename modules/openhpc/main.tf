# A Slurm cluster as one appliance: a login node running slurmctld and
# compute nodes running slurmd in configless mode (they fetch slurm.conf from
# slurmctld and register as dynamic nodes), munge with a key tundrad
# generates, and /home from a share.

locals {
  slurm_network = var.slurm_network_id != null ? var.slurm_network_id : try(var.networks[0], "")
  # The other networks, in order (the Slurm network comes first on each node).
  other_networks = [for n in var.networks : n if n != local.slurm_network]
  # Whether the module makes /home goes by the share type, known at plan
  # time, not by home_share_id, which may be a share made in the same apply.
  home = var.home_share_type_id != null ? tundra_share.home[0].id : var.home_share_id
  partitions = join("", [
    for p in var.partitions :
    "PartitionName=${p.name} Nodes=compute Default=${p.default ? "YES" : "NO"} MaxTime=${p.max_time} State=UP\n"
  ])
}

data "tundra_appliance_template" "slurm" {
  name       = var.template_name
  version    = var.template_version
  project_id = var.project_id
}

resource "tundra_share" "home" {
  count         = var.home_share_type_id != null ? 1 : 0
  project_id    = var.project_id
  name          = "${var.name}-home"
  share_type_id = var.home_share_type_id
  size_gib      = var.home_size_gib
}

resource "tundra_appliance" "slurm" {
  project_id  = var.project_id
  name        = var.name
  template_id = data.tundra_appliance_template.slurm.id
  keypair_id  = var.keypair_id
  parameters = {
    cluster_name   = var.name
    compute_count  = var.compute_count
    login_flavor   = var.login_flavor_id
    compute_flavor = var.compute_flavor_id
    image          = var.image_id
    slurm_network  = local.slurm_network
    networks       = local.other_networks
    home           = local.home
    partitions     = local.partitions
    users          = join("", [for n, u in var.users : "${n}:${u}\n"])
  }
}
