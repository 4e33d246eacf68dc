# Site admins create projects; members then work inside them.
resource "tundra_project" "astro" {
  name        = "astro"
  description = "Radio-astronomy data processing"
}
