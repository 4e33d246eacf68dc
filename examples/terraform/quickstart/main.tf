# Tundra quickstart: `scripts/quickstart.sh` starts tundrad on its embedded
# default and applies this configuration against it as the bootstrap admin
# (TUNDRA_TOKEN from the data dir's admin-token file).
#
# Today: a project, a public flavor, a keypair and an image. Networks and
# nodes join here as the service grows (a network, 4 nodes in one island,
# and their addresses as outputs).

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

variable "image_path" {
  description = "A local raw image to upload (the quickstart script makes a small one)."
  type        = string
}

variable "public_key" {
  description = "SSH public key for the keypair."
  type        = string
}

provider "tundra" {
  endpoint = var.endpoint
}

resource "tundra_project" "demo" {
  name        = "demo"
  description = "Quickstart project"
}

resource "tundra_flavor" "compute" {
  name            = "compute"
  public          = true
  resource_class  = "baremetal"
  required_traits = ["x86_64"]
}

resource "tundra_keypair" "me" {
  project_id = tundra_project.demo.id
  name       = "me"
  public_key = var.public_key
}

resource "tundra_image" "demo" {
  project_id  = tundra_project.demo.id
  name        = "demo-disk"
  disk_format = "raw"
  sha256      = filesha256(var.image_path)
  source_path = var.image_path
}

output "tundra_endpoint" {
  value = var.endpoint
}

output "keypair_fingerprint" {
  value = tundra_keypair.me.fingerprint
}

output "image" {
  value = "${tundra_image.demo.name}: ${tundra_image.demo.status}, ${tundra_image.demo.size_bytes} bytes"
}
