# The appliance template behind modules/dask, published once by a site
# admin. A change to dask.json is a new version: bump `version_number`, and
# clusters made from the old one keep it.

variable "name" {
  type        = string
  description = "The template's name (the dask module's template_name)."
  default     = "dask"
}

variable "version_number" {
  type        = number
  description = "The template's version."
  default     = 2
}

resource "tundra_appliance_template" "dask" {
  name        = var.name
  version     = var.version_number
  description = "Dask: a scheduler and workers speaking mutual TLS with the appliance's own CA, an optional /data share"
  spec        = file("${path.module}/dask.json")
}

output "id" {
  description = "The template's ID."
  value       = tundra_appliance_template.dask.id
}
