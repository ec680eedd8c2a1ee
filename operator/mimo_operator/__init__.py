"""mimo-operator: plans and serves Xiaomi MiMo-V2-Flash on vLLM in Kubernetes."""

__version__ = "0.1.0"
