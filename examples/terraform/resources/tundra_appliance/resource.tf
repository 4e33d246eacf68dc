# A Dask cluster of 8 workers from the site's template. Raising
# worker_count adds workers in place; lowering it drains and removes them.
data "tundra_appliance_template" "dask" {
  name = "dask"
}

data "tundra_flavor" "compute" {
  name = "compute"
}

data "tundra_image" "debian" {
  name = "debian-12-dask"
}

data "tundra_network" "science" {
  name = "science"
}

resource "tundra_appliance" "dask" {
  name        = "dask"
  template_id = data.tundra_appliance_template.dask.id
  parameters = {
    worker_count = 8
    flavor       = data.tundra_flavor.compute.id
    image        = data.tundra_image.debian.id
    network      = data.tundra_network.science.id
  }
}

output "dask_scheduler" {
  value = tundra_appliance.dask.outputs["scheduler"]
}
