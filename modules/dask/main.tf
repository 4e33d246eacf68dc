# A Dask cluster as one appliance: a scheduler node and `worker_count`
# worker nodes (or, joined to an openhpc platform, worker_count Slurm jobs),
# speaking mutual TLS with a CA tundrad makes for the appliance alone,
# optionally sharing a /data share.

locals {
  # With slurm, Dask's traffic is on the platform's Slurm network, where
  # the worker jobs run.
  dask_network = var.slurm != null ? var.slurm.network_id : var.dask_network_id != null ? var.dask_network_id : try(var.networks[0], "")
  # The other networks, in order (the Dask network comes first on each node).
  other_networks = [for n in var.networks : n if n != local.dask_network]
}

data "tundra_appliance_template" "dask" {
  name       = var.template_name
  version    = var.template_version
  project_id = var.project_id
}

resource "tundra_appliance" "dask" {
  project_id  = var.project_id
  name        = var.name
  template_id = data.tundra_appliance_template.dask.id
  keypair_id  = var.keypair_id
  parameters = {
    worker_count     = var.slurm == null ? var.worker_count : 0
    scheduler_flavor = var.scheduler_flavor_id
    worker_flavor    = coalesce(var.worker_flavor_id, var.scheduler_flavor_id)
    image            = var.image_id
    dask_network     = local.dask_network
    networks         = local.other_networks
    data             = var.data_share_id
    worker_threads   = coalesce(var.worker_threads, 0)
    worker_memory    = var.worker_memory
    home             = try(var.slurm.home_share_id, null)
    slurm            = try(var.slurm.appliance_id, null)
    slurm_user       = var.slurm_user == null ? "" : var.slurm_user
    slurm_workers    = var.slurm == null ? 0 : var.worker_count
    slurm_partition  = var.slurm_partition == null ? "" : var.slurm_partition
  }
}
