# A public flavor (site admins): GPU nodes on the InfiniBand fabric.
resource "tundra_flavor" "gpu_ib" {
  name            = "gpu-ib"
  public          = true
  description     = "A100 nodes with HDR InfiniBand"
  resource_class  = "baremetal.gpu"
  required_traits = ["gpu", "ib"]
}

# A project's own flavor.
resource "tundra_flavor" "bigmem" {
  name           = "bigmem"
  resource_class = "baremetal.bigmem"
}
