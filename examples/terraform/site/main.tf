# The site, as its admin declares it: every machine of a lab (the lab.json
# `tundra-lab up` writes) enrolled, inspected and cleaned until available,
# and a public flavor for them. scripts/quickstart.sh applies this first.

terraform {
  required_providers {
    tundra = {
      source = "tundra/tundra"
    }
  }
}

variable "endpoint" {
  description = "Base URL of tundrad."
  type        = string
  default     = "http://127.0.0.1:8180"
}

variable "lab_file" {
  description = "The lab.json written by `tundra-lab up` (machines, BMCs, MACs)."
  type        = string
}

provider "tundra" {
  endpoint = var.endpoint
}

locals {
  lab = jsondecode(file(var.lab_file))
  # The lab's switch, when tundrad programs it over SSH (`ssh = true` in the site file).
  switch = try(local.lab.switch, null)
}

# The data fabric: projects' networks get VLANs 100–199; ports sit on the
# provisioning VLAN while machines deploy, are cleaned or are free.
resource "tundra_physical_network" "fabric" {
  count                = local.switch == null ? 0 : 1
  name                 = "fabric"
  kind                 = "ethernet"
  segment_range        = [100, 199]
  provisioning_segment = local.switch.provisioning_vlan
}

resource "tundra_switch" "leaf" {
  count               = local.switch == null ? 0 : 1
  name                = local.switch.name
  physical_network_id = tundra_physical_network.fabric[0].id
  dialect             = local.switch.dialect
  address             = local.switch.address
  username            = local.switch.username
  private_key         = file(local.switch.private_key_file) # write-only: never in state
  credentials_version = 1
  host_key            = local.switch.host_key
  max_sessions        = 2
}

resource "tundra_machine" "lab" {
  for_each = { for m in local.lab.machines : m.name => m }

  name           = each.key
  resource_class = "baremetal"
  location = {
    rack   = each.value.rack
    island = each.value.island
  }
  bmc = {
    driver   = each.value.bmc.driver
    address  = each.value.bmc.address
    system   = try(each.value.bmc.system, null)
    username = each.value.bmc.username
  }
  bmc_password = each.value.bmc.password
  # Cabling as LLDP sees it: the switch and port of each NIC.
  interfaces = [for i, mac in each.value.macs : {
    mac              = mac
    pxe              = i == 0
    physical_network = local.switch == null ? null : "fabric"
    switch           = each.value.cabling[i].switch
    port             = each.value.cabling[i].port_id
  }]
  # Inspect the hardware and clean the disks: available for nodes.
  provide    = true
  depends_on = [tundra_switch.leaf]
}

resource "tundra_flavor" "compute" {
  name           = "compute"
  public         = true
  resource_class = "baremetal"
}

output "machines" {
  value = { for k, m in tundra_machine.lab : k => "${m.provision_state}, rack ${m.location.rack}, island ${m.location.island}" }
}
