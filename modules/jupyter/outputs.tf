output "appliance_id" {
  description = "The appliance's ID."
  value       = tundra_appliance.jupyterhub.id
}

output "hub_url" {
  description = "Where users log in: http://ADDRESS:8000 on the hub's network (plain HTTP)."
  value       = tundra_appliance.jupyterhub.outputs["hub_url"]
}

output "api_url" {
  description = "The hub's REST API (tokens from POST api_url/users/NAME/tokens)."
  value       = tundra_appliance.jupyterhub.outputs["api_url"]
}

output "ssh_command" {
  description = "How to log in to the hub node."
  value       = tundra_appliance.jupyterhub.outputs["ssh_command"]
}

output "usage" {
  description = "How to use the hub, rendered by tundrad."
  value       = tundra_appliance.jupyterhub.usage
}
