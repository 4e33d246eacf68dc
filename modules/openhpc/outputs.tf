output "appliance_id" {
  description = "The appliance's ID."
  value       = tundra_appliance.slurm.id
}

output "login_address" {
  description = "The login node's address on the Slurm network."
  value       = tundra_appliance.slurm.outputs["login_address"]
}

output "ssh_command" {
  description = "How to log in."
  value       = tundra_appliance.slurm.outputs["ssh_command"]
}

output "compute_nodes" {
  description = "The compute nodes' names (also their Slurm node names)."
  value       = [for m in tundra_appliance.slurm.members : m.name if m.role == "compute"]
}

output "home_share_id" {
  description = "The share mounted as /home."
  value       = local.home
}

output "usage" {
  description = "How to use the cluster, rendered by tundrad."
  value       = tundra_appliance.slurm.usage
}

output "platform" {
  description = "What another module needs to join this cluster (the slurm input of modules/jupyter and modules/dask): the appliance's ID, the Slurm network's and /home's."
  value = {
    appliance_id  = tundra_appliance.slurm.id
    network_id    = local.slurm_network
    home_share_id = local.home
  }
}
