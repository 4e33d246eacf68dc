# The appliance template behind modules/jupyter, published once by a site
# admin. A change to jupyterhub.json is a new version: bump
# `version_number`, and hubs made from the old one keep it.

variable "name" {
  type        = string
  description = "The template's name (the jupyter module's template_name)."
  default     = "jupyterhub"
}

variable "version_number" {
  type        = number
  description = "The template's version."
  default     = 2
}

resource "tundra_appliance_template" "jupyterhub" {
  name        = var.name
  version     = var.version_number
  description = "JupyterHub on a node: a plain address on a chosen network, users' servers on the hub node, homes on an optional share"
  spec        = file("${path.module}/jupyterhub.json")
}

output "id" {
  description = "The template's ID."
  value       = tundra_appliance_template.jupyterhub.id
}
