data "tundra_image" "rocky" {
  name = "rocky-9.4"
}

output "rocky_size" {
  value = data.tundra_image.rocky.size_bytes
}
