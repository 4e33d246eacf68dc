# Tundra quickstart: `scripts/quickstart.sh` starts tundrad on its embedded
# default and applies this configuration against it.
#
# Today tundrad serves its API skeleton; nodes, networks and keypairs are
# added here as the service grows (a network, 4 nodes in one island, a
# keypair, and their addresses as outputs).

terraform {
  required_providers {
    tundra = {
      source = "tundra/tundra"
    }
  }
}

variable "endpoint" {
  description = "Base URL of tundrad (the quickstart script passes the one it started)."
  type        = string
  default     = "http://127.0.0.1:8180"
}

provider "tundra" {
  endpoint = var.endpoint
}

output "tundra_endpoint" {
  value = var.endpoint
}
