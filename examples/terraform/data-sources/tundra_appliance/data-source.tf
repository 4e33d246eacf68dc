# An appliance another configuration manages, by name in the provider's project.
data "tundra_appliance" "slurm" {
  name = "hpc"
}

output "slurm_login" {
  value = data.tundra_appliance.slurm.outputs["login_address"]
}
