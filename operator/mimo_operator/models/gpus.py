"""The GPU catalog: what each accelerator offers a vLLM process, and how Kubernetes nodes label it.

The planner sizes everything from `memory_mib`, the total memory the driver reports (`nvidia-smi
--query-gpu=memory.total`, `rocm-smi --showmeminfo vram`), because vLLM's `--gpu-memory-utilization`
is a fraction of exactly that figure (vLLM `Worker.determine_available_memory` uses
`torch.cuda.mem_get_info()` total, which is what the driver reports, on CUDA and on ROCm).

The architecture fields (vendor, CUDA compute capability or AMD gfx target) are what vLLM's attention
backend selection reads (`current_platform.get_device_capability()`); `planner/attention.py` turns
them into "can this model's attention run here, with which backend".

The product string is the value the vendor's node labeller writes (NVIDIA GPU feature discovery:
`nvidia.com/gpu.product`; AMD's k8s-device-plugin labeller: `amd.com/gpu.product-name`), so a
MimoDeployment can select nodes the way a real cluster labels them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MIB = 1024 * 1024
GIB = 1024 * MIB

Vendor = Literal["nvidia", "amd"]

# The extended resource and node label each vendor's Kubernetes device plugin publishes:
# NVIDIA k8s-device-plugin / GPU feature discovery (https://github.com/NVIDIA/k8s-device-plugin),
# AMD ROCm k8s-device-plugin and its node labeller (https://github.com/ROCm/k8s-device-plugin).
GPU_RESOURCE = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}
PRODUCT_LABEL_KEY = {"nvidia": "nvidia.com/gpu.product", "amd": "amd.com/gpu.product-name"}


@dataclass(frozen=True)
class GpuSpec:
    """One accelerator model as the planner and the scheduler see it."""

    key: str
    product_label: str  # the vendor node labeller's product value (see PRODUCT_LABEL_KEY)
    memory_mib: int  # total memory reported by the driver
    bandwidth_gbps: float  # peak memory bandwidth, GB/s (datasheet)
    native_fp8: bool  # fp8 tensor/matrix cores (Hopper, Ada, Blackwell, CDNA3/4); Ampere emulates via Marlin
    default_per_node: int  # GPUs in the common server of this kind
    description: str = ""
    vendor: Vendor = "nvidia"
    architecture: str = ""  # marketing name of the generation: Ampere, Ada, Hopper, Blackwell, CDNA3, CDNA4
    # CUDA compute capability (major, minor) for NVIDIA; None for AMD or when unknown (custom GPUs).
    compute_capability: tuple[int, int] | None = None
    gfx_target: str = ""  # AMD LLVM target (gfx942, gfx950); empty for NVIDIA

    @property
    def memory_gib(self) -> float:
        return self.memory_mib * MIB / GIB

    @property
    def resource_name(self) -> str:
        return GPU_RESOURCE[self.vendor]

    @property
    def product_label_key(self) -> str:
        return PRODUCT_LABEL_KEY[self.vendor]

    @property
    def arch_name(self) -> str:
        """`SM 9.0 (Hopper)` or `gfx942 (CDNA3)`: how vLLM's own messages name the device."""
        if self.compute_capability is not None:
            major, minor = self.compute_capability
            return f"SM {major}.{minor} ({self.architecture})"
        if self.gfx_target:
            return f"{self.gfx_target} ({self.architecture})"
        return "unknown architecture"


# Sources for memory_mib (total memory as the driver reports it):
# - NVIDIA: `nvidia-smi` output published in NVIDIA's DGX user guides and public vendor/benchmark
#   logs: H100 SXM/PCIe and H800 81559 MiB, H200 143771 MiB, H20 97871 MiB, B200 183359 MiB,
#   B300 SXM6 AC 275040 MiB, A100-80GB 81920 MiB, L40S 46068 MiB.
# - AMD: `rocm-smi --showmeminfo vram` reports the full HBM capacity in bytes (MI300X:
#   "VRAM Total Memory (B): 206158430208" = 196608 MiB = 192 GiB); the MI325X (256 GB) and MI355X
#   (288 GB) datasheets state the capacity in the same binary units, so 262144 MiB and 294912 MiB.
# Bandwidth, compute capability and fp8 support: each vendor's datasheet; compute capabilities from
# https://developer.nvidia.com/cuda-gpus (A100 8.0, L40S 8.9, H100/H200/H20/H800 9.0, B200 10.0,
# B300 10.3) and AMD gfx targets from the ROCm hardware specification table
# (https://rocm.docs.amd.com/en/latest/reference/gpu-arch-specs.html: MI300X/MI325X gfx942, MI355X gfx950).
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
            architecture="Hopper",
            compute_capability=(9, 0),
        ),
        GpuSpec(
            key="H100-80GB-PCIE",
            product_label="NVIDIA-H100-PCIe",
            memory_mib=81559,
            bandwidth_gbps=2000.0,
            native_fp8=True,
            default_per_node=8,
            description="H100 PCIe 80 GB HBM2e",
            architecture="Hopper",
            compute_capability=(9, 0),
        ),
        GpuSpec(
            key="H800-80GB",
            product_label="NVIDIA-H800",
            memory_mib=81559,
            # H800 SXM keeps the H100 SXM memory system (80 GB HBM3, 3.35 TB/s); only NVLink is cut
            # to 400 GB/s (NVIDIA H800 product brief).
            bandwidth_gbps=3350.0,
            native_fp8=True,
            default_per_node=8,
            description="H800 SXM5 80 GB HBM3 (export variant of H100: NVLink 400 GB/s)",
            architecture="Hopper",
            compute_capability=(9, 0),
        ),
        GpuSpec(
            key="H20-96GB",
            product_label="NVIDIA-H20",
            memory_mib=97871,
            bandwidth_gbps=4000.0,  # NVIDIA H20 datasheet: 96 GB HBM3, 4.0 TB/s
            native_fp8=True,
            default_per_node=8,
            description="H20 96 GB HBM3 (HGX H20; Hopper with reduced compute)",
            architecture="Hopper",
            compute_capability=(9, 0),
        ),
        GpuSpec(
            key="H200-141GB",
            product_label="NVIDIA-H200",
            memory_mib=143771,
            bandwidth_gbps=4800.0,
            native_fp8=True,
            default_per_node=8,
            description="H200 SXM 141 GB HBM3e (HGX H200)",
            architecture="Hopper",
            compute_capability=(9, 0),
        ),
        GpuSpec(
            key="B200-192GB",
            product_label="NVIDIA-B200",
            memory_mib=183359,
            bandwidth_gbps=8000.0,
            native_fp8=True,
            default_per_node=8,
            description="B200 SXM 192 GB HBM3e (HGX B200; the driver exposes ~179 GiB)",
            architecture="Blackwell",
            compute_capability=(10, 0),
        ),
        GpuSpec(
            key="B300-288GB",
            product_label="NVIDIA-B300-SXM6-AC",
            memory_mib=275040,
            bandwidth_gbps=8000.0,  # NVIDIA HGX B300 datasheet: 288 GB HBM3e, 8 TB/s per GPU
            native_fp8=True,
            default_per_node=8,
            description="B300 SXM6 288 GB HBM3e (HGX B300, Blackwell Ultra; the driver exposes ~269 GiB)",
            architecture="Blackwell Ultra",
            compute_capability=(10, 3),
        ),
        GpuSpec(
            key="A100-80GB",
            product_label="NVIDIA-A100-SXM4-80GB",
            memory_mib=81920,
            bandwidth_gbps=2039.0,
            native_fp8=False,
            default_per_node=8,
            description="A100 SXM4 80 GB HBM2e (HGX A100); fp8 weights run through Marlin kernels",
            architecture="Ampere",
            compute_capability=(8, 0),
        ),
        GpuSpec(
            key="L40S-48GB",
            product_label="NVIDIA-L40S",
            memory_mib=46068,
            bandwidth_gbps=864.0,
            native_fp8=True,
            default_per_node=4,
            description="L40S 48 GB GDDR6, PCIe, no NVLink",
            architecture="Ada",
            compute_capability=(8, 9),
        ),
        GpuSpec(
            key="MI300X-192GB",
            product_label="AMD_Instinct_MI300X_OAM",  # ROCm k8s-device-plugin labeller example
            memory_mib=196608,
            bandwidth_gbps=5300.0,  # AMD Instinct MI300X datasheet: 192 GB HBM3, 5.3 TB/s
            native_fp8=True,
            default_per_node=8,
            description="Instinct MI300X 192 GB HBM3 (OAM, 8 per platform)",
            vendor="amd",
            architecture="CDNA3",
            gfx_target="gfx942",
        ),
        GpuSpec(
            key="MI325X-256GB",
            product_label="AMD_Instinct_MI325_OAM",  # value the ROCm labeller writes for MI325X
            memory_mib=262144,
            bandwidth_gbps=6000.0,  # AMD Instinct MI325X datasheet: 256 GB HBM3E, 6 TB/s
            native_fp8=True,
            default_per_node=8,
            description="Instinct MI325X 256 GB HBM3E (OAM, 8 per platform)",
            vendor="amd",
            architecture="CDNA3",
            gfx_target="gfx942",
        ),
        GpuSpec(
            key="MI355X-288GB",
            product_label="AMD_Instinct_MI355X_OAM",
            memory_mib=294912,
            bandwidth_gbps=8000.0,  # AMD Instinct MI355X datasheet: 288 GB HBM3E, 8 TB/s
            native_fp8=True,
            default_per_node=8,
            description="Instinct MI355X 288 GB HBM3E (OAM, 8 per platform)",
            vendor="amd",
            architecture="CDNA4",
            gfx_target="gfx950",
        ),
    )
}


def custom_gpu(memory_gib: float, per_node: int = 8, bandwidth_gbps: float = 0.0) -> GpuSpec:
    """A GPU not in the catalog, described by the memory its driver reports. Its architecture is
    unknown, so the planner cannot check attention support and says so in the plan."""
    return GpuSpec(
        key="custom",
        product_label="",
        memory_mib=round(memory_gib * 1024),
        bandwidth_gbps=bandwidth_gbps,
        native_fp8=True,
        default_per_node=per_node,
        description=f"custom GPU with {memory_gib:g} GiB",
    )
