data "tundra_physical_network" "fabric" {
  name = "fabric"
}

variable "leaf_password" {
  type      = string
  sensitive = true
  ephemeral = true
}

# A leaf switch tundrad programs over SSH (site admins). The password is
# write-only: never in state; bump credentials_version to send a new one.
resource "tundra_switch" "leaf1" {
  name                = "leaf-1" # as LLDP names it (its system name)
  physical_network_id = data.tundra_physical_network.fabric.id
  dialect             = "cisco_ios"
  address             = "10.0.0.11:22"
  username            = "tundra"
  password            = var.leaf_password
  credentials_version = 1
  host_key            = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"
  max_sessions        = 2
  min_interval_ms     = 500
}
