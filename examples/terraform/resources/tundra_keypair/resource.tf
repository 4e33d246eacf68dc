resource "tundra_keypair" "laptop" {
  name        = "alice-laptop"
  description = "Alice's workstation"
  public_key  = file(pathexpand("~/.ssh/id_ed25519.pub"))
  # project_id defaults to the provider's project.
}
