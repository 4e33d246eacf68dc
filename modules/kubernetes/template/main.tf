# The cluster template behind modules/kubernetes, published once by a site
# admin: k3s, installed air-gapped on each node from the site's bundle (a
# tar of the `k3s` binary and `k3s-airgap-images-amd64.tar.zst` of the same
# release), registered as a site image. A new k3s release is a new bundle
# and a new `version_number`; clusters made from the old one keep it.

variable "bundle_path" {
  type        = string
  description = "The k3s air-gap bundle (tar) on the machine running Terraform."
}

variable "name" {
  type        = string
  description = "The template's name (the kubernetes module's template_name)."
  default     = "k3s"
}

variable "version_number" {
  type        = number
  description = "The template's version."
  default     = 1
}

resource "tundra_image" "bundle" {
  name        = "${var.name}-airgap-bundle-v${var.version_number}"
  disk_format = "raw"
  sha256      = filesha256(var.bundle_path)
  source_path = var.bundle_path
}

resource "tundra_cluster_template" "k3s" {
  name            = var.name
  version         = var.version_number
  kind            = "kubernetes"
  description     = "k3s from the site's air-gap bundle"
  bundle_image_id = tundra_image.bundle.id
}

output "id" {
  description = "The template's ID."
  value       = tundra_cluster_template.k3s.id
}
