terraform {
  required_version = ">= 1.9"
  required_providers {
    tundra = {
      source = "tundra/tundra"
    }
  }
}
