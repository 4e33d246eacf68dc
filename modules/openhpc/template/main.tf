# The appliance template behind modules/openhpc, published once by a site
# admin. A change to slurm.json is a new version: bump `version`, and
# clusters made from the old one keep it.

variable "name" {
  type        = string
  description = "The template's name (the openhpc module's template_name)."
  default     = "openhpc-slurm"
}

variable "version_number" {
  type        = number
  description = "The template's version."
  default     = 4
}

resource "tundra_appliance_template" "slurm" {
  name        = var.name
  version     = var.version_number
  description = "Slurm (configless, dynamic compute nodes) with munge and a shared /home"
  spec        = file("${path.module}/slurm.json")
}

output "id" {
  description = "The template's ID."
  value       = tundra_appliance_template.slurm.id
}
