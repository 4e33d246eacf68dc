data "tundra_port" "head" {
  name = "slurm-head"
}

output "head_drift" {
  value = data.tundra_port.head.drift
}
