data "tundra_subnet" "storage" {
  name = "ceph-public-v4"
}

output "storage_cidr" {
  value = data.tundra_subnet.storage.cidr
}
