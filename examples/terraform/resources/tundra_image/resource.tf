# tundrad fetches the image (the URL must be under its image_source_allow)
# and converts qcow2 to raw; create waits until it is active.
resource "tundra_image" "rocky" {
  name        = "rocky-9.4"
  public      = true
  disk_format = "qcow2"
  sha256      = "4f3e8f0a2ad5c7e1b0c3d6a9e8f7b6a5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9"
  source_url  = "https://images.example.org/rocky/Rocky-9.4-GenericCloud.qcow2"

  timeouts {
    create = "2h"
  }
}

# Or upload a local file.
resource "tundra_image" "custom" {
  name        = "pipeline-node"
  disk_format = "raw"
  sha256      = filesha256("build/pipeline-node.raw")
  source_path = "build/pipeline-node.raw"
}
