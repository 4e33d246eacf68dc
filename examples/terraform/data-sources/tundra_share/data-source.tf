# A share another configuration manages, by name in the provider's project.
data "tundra_share" "home" {
  name = "home"
}

output "home_export" {
  value = data.tundra_share.home.export_locations[0].path
}
