# Finds the project's own flavor of that name, else a public one.
data "tundra_flavor" "gpu" {
  name = "gpu-ib"
}
