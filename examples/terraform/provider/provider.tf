terraform {
  required_providers {
    tundra = {
      source = "tundra/tundra"
    }
  }
}

# Endpoint, token and project can also come from TUNDRA_ENDPOINT,
# TUNDRA_TOKEN and TUNDRA_PROJECT, which keeps the token out of files.
provider "tundra" {
  endpoint = "https://tundra.example.org:8180"
  project  = "radio-astronomy"
}
