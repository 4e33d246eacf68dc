output "appliance_id" {
  description = "The appliance's ID."
  value       = tundra_appliance.dask.id
}

output "scheduler_address" {
  description = "Where Dask clients connect: tls://ADDRESS:8786 on the Dask network (mutual TLS with the appliance's CA)."
  value       = tundra_appliance.dask.outputs["scheduler_address"]
}

output "dashboard_url" {
  description = "The scheduler's dashboard (plain HTTP on the Dask network)."
  value       = tundra_appliance.dask.outputs["dashboard_url"]
}

output "ssh_command" {
  description = "How to log in to the scheduler node, where clients have the cluster's TLS settings."
  value       = tundra_appliance.dask.outputs["ssh_command"]
}

output "workers" {
  description = "The worker nodes' names (also their Dask worker names)."
  value       = [for m in tundra_appliance.dask.members : m.name if m.role == "worker"]
}

output "usage" {
  description = "How to use the cluster, rendered by tundrad."
  value       = tundra_appliance.dask.usage
}
