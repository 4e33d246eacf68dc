data "tundra_network" "data" {
  name = "data"
}

# Static addresses from 10.30.0.10–10.30.0.200, written to each node's config drive.
resource "tundra_subnet" "data" {
  network_id = data.tundra_network.data.id
  name       = "data-v4"
  cidr       = "10.30.0.0/24"
  gateway    = "10.30.0.1"
  dns        = ["10.30.0.53"]

  allocation_pools = [{
    start = "10.30.0.10"
    end   = "10.30.0.200"
  }]
}
