# Import an access rule by its ID (its key never enters state).
terraform import tundra_share_access.csi 0190b3c4-0000-7000-8000-000000000003
