"""The GPU catalog: what each accelerator offers a vLLM process, and how Kubernetes nodes label it.

The planner sizes everything from `memory_mib`, the total memory the driver reports (`nvidia-smi
--query-gpu=memory.total`), because vLLM's `--gpu-memory-utilization` is a fraction of exactly that
figure (vLLM `Worker.determine_available_memory` uses `torch.cuda.mem_get_info()` total). The product
string is the value NVIDIA GPU feature discovery writes into the node label `nvidia.com/gpu.product`,
so a MimoDeployment can select nodes the way a real cluster labels them.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024
GIB = 1024 * MIB


@dataclass(frozen=True)
class GpuSpec:
    """One accelerator model as the planner and the scheduler see it."""

    key: str
    product_label: str  # nvidia.com/gpu.product as set by GPU feature discovery
    memory_mib: int  # total memory reported by the driver
    bandwidth_gbps: float  # peak memory bandwidth, GB/s (datasheet)
    native_fp8: bool  # fp8 tensor cores (Hopper, Ada, Blackwell); Ampere emulates via Marlin
    default_per_node: int  # GPUs in the common server of this kind
    description: str = ""

    @property
    def memory_gib(self) -> float:
        return self.memory_mib * MIB / GIB


# Sources for memory_mib: `nvidia-smi` output published in NVIDIA's DGX user guides and vendor
# benchmark logs (H100 SXM/PCIe 81559 MiB, H200 143771 MiB, B200 183359 MiB, A100-80GB 81920 MiB,
# L40S 46068 MiB). Bandwidth and fp8 support: NVIDIA datasheets for each product.
GPU_CATALOG: dict[str, GpuSpec] = {
    spec.key: spec
    for spec in (
        GpuSpec(
            key="H100-80GB",
            product_label="NVIDIA-H100-80GB-HBM3",
            memory_mib=81559,
            bandwidth_gbps=3350.0,
            native_fp8=True,
            default_per_node=8,
            description="H100 SXM5 80 GB HBM3 (HGX H100)",
        ),
        GpuSpec(
            key="H100-80GB-PCIE",
            product_label="NVIDIA-H100-PCIe",
            memory_mib=81559,
            bandwidth_gbps=2000.0,
            native_fp8=True,
            default_per_node=8,
            description="H100 PCIe 80 GB HBM2e",
        ),
        GpuSpec(
            key="H200-141GB",
            product_label="NVIDIA-H200",
            memory_mib=143771,
            bandwidth_gbps=4800.0,
            native_fp8=True,
            default_per_node=8,
            description="H200 SXM 141 GB HBM3e (HGX H200)",
        ),
        GpuSpec(
            key="B200-192GB",
            product_label="NVIDIA-B200",
            memory_mib=183359,
            bandwidth_gbps=8000.0,
            native_fp8=True,
            default_per_node=8,
            description="B200 SXM 192 GB HBM3e (HGX B200; the driver exposes ~179 GiB)",
        ),
        GpuSpec(
            key="A100-80GB",
            product_label="NVIDIA-A100-SXM4-80GB",
            memory_mib=81920,
            bandwidth_gbps=2039.0,
            native_fp8=False,
            default_per_node=8,
            description="A100 SXM4 80 GB HBM2e (HGX A100); fp8 weights run through Marlin kernels",
        ),
        GpuSpec(
            key="L40S-48GB",
            product_label="NVIDIA-L40S",
            memory_mib=46068,
            bandwidth_gbps=864.0,
            native_fp8=True,
            default_per_node=4,
            description="L40S 48 GB GDDR6, PCIe, no NVLink",
        ),
    )
}


def custom_gpu(memory_gib: float, per_node: int = 8, bandwidth_gbps: float = 0.0) -> GpuSpec:
    """A GPU not in the catalog, described by the memory its driver reports."""
    return GpuSpec(
        key="custom",
        product_label="",
        memory_mib=round(memory_gib * 1024),
        bandwidth_gbps=bandwidth_gbps,
        native_fp8=True,
        default_per_node=per_node,
        description=f"custom GPU with {memory_gib:g} GiB",
    )
