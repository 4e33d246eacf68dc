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
  interfaces   = [for i, mac in each.value.macs : { mac = mac, pxe = i == 0 }]
  # Inspect the hardware and clean the disks: available for nodes.
  provide = true
}

resource "tundra_flavor" "compute" {
  name           = "compute"
  public         = true
  resource_class = "baremetal"
}

output "machines" {
  value = { for k, m in tundra_machine.lab : k => "${m.provision_state}, rack ${m.location.rack}, island ${m.location.island}" }
}
