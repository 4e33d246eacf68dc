# The highest version of the site's Slurm template (or the project's own).
data "tundra_appliance_template" "slurm" {
  name = "openhpc-slurm"
}

output "slurm_parameters" {
  value = data.tundra_appliance_template.slurm.parameters[*].name
}
