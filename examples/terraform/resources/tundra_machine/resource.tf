variable "bmc_password" {
  type      = string
  sensitive = true
}

# A GPU node on the InfiniBand island "i1", verified through its Redfish BMC.
resource "tundra_machine" "gpu01" {
  name           = "gpu01"
  resource_class = "baremetal.gpu"
  traits         = ["gpu", "ib"]

  location = {
    rack   = "r12"
    island = "i1"
  }

  bmc = {
    driver   = "redfish"
    address  = "https://10.10.0.21"
    username = "tundra"
    insecure = true # self-signed BMC certificate
  }
  bmc_password         = var.bmc_password # write-only: never stored in state
  bmc_password_version = 1                # bump after rotating the password

  interfaces = [
    { mac = "b8:59:9f:10:20:30", physical_network = "ctlplane", pxe = true },
    { mac = "b8:59:9f:10:20:31", physical_network = "hte" },
  ]
}
