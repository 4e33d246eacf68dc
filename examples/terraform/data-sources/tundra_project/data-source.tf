data "tundra_project" "astro" {
  name = "astro"
}
