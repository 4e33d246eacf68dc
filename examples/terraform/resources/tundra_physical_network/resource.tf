# The data fabric (site admins): projects' networks get VLANs 100–999;
# machines' switch ports sit on VLAN 10 while they deploy or are cleaned.
resource "tundra_physical_network" "fabric" {
  name                 = "fabric"
  kind                 = "ethernet"
  segment_range        = [100, 999]
  provisioning_segment = 10
  mtu                  = 9000
}

# An InfiniBand island: networks are partition keys, addresses go to the config drive.
resource "tundra_physical_network" "ib" {
  name          = "ib-a"
  kind          = "infiniband"
  segment_range = [2, 127]
}
