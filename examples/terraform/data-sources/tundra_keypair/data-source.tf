data "tundra_keypair" "ops" {
  name = "ops-team"
}
