output "cluster_id" {
  description = "The cluster's ID."
  value       = tundra_cluster.k8s.id
}

output "endpoint" {
  description = "The API server: https://ADDRESS:6443 on the cluster network."
  value       = tundra_cluster.k8s.endpoint
}

output "ca_certificate" {
  description = "The API server's CA certificate (PEM)."
  value       = tundra_cluster.k8s.ca_certificate
}

output "nodes" {
  description = "The cluster's nodes: name => group."
  value       = { for m in tundra_cluster.k8s.members : m.name => m.group }
}

output "volumes_manifest" {
  description = "The shares as Kubernetes objects (YAML): a persistent volume and its claim per share. Apply with the kubeconfig: terraform output -raw volumes_manifest | kubectl apply -f -"
  value       = join("", [for d in local.volume_documents : "---\n${yamlencode(d)}"])
}
