#!/usr/bin/env bash
# HyperPod (EKS) lifecycle script, owned by this repository and uploaded to the BU's
# hyperpod-lifecycle bucket by the HyperPod stack. It runs once as root on every new node,
# after HyperPod's own bootstrap. It must stay idempotent: node recovery re-runs it.
set -euo pipefail

LOG=/var/log/provision/platform-on-create.log
mkdir -p "$(dirname "$LOG")"
exec > >(tee -a "$LOG") 2>&1
echo "[$(date -Is)] platform on_create: start"

# Container images and pod scratch space go to the instance group's secondary EBS volume
# (mounted by HyperPod at /opt/sagemaker), not the small root volume: training images are
# tens of GB.
if mountpoint -q /opt/sagemaker; then
  mkdir -p /opt/sagemaker/containerd /opt/sagemaker/kubelet
  if [ -f /etc/eks/containerd/containerd-config.toml ] &&
     ! grep -q '/opt/sagemaker/containerd' /etc/eks/containerd/containerd-config.toml; then
    sed -i 's|^root = .*|root = "/opt/sagemaker/containerd"|' /etc/eks/containerd/containerd-config.toml
  fi
fi

# NCCL over EFA: raise the locked-memory and open-file limits for every pod's processes.
cat > /etc/security/limits.d/99-platform-efa.conf <<'LIMITS'
* soft memlock unlimited
* hard memlock unlimited
* soft nofile 1048576
* hard nofile 1048576
LIMITS

echo "[$(date -Is)] platform on_create: done"
