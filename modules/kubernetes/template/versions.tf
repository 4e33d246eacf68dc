terraform {
  required_version = ">= 1.10"
  required_providers {
    tundra = {
      source = "tundra/tundra"
    }
  }
}
