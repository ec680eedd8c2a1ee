"""Sandbox control plane: real Kubernetes components built from source, with kwok-simulated GPU nodes."""
