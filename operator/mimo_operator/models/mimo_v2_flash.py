"""MiMo-V2-Flash's profile: derived from its config.json fixture by the same parser as every MiMo release.

Its shapes used to be typed in here; they now come from `checkpoints/mimo-v2-flash.config.json`
(sources in the README there), and tests/unit/test_checkpoint.py keeps the old hand-typed profile as a
regression reference: the derived one must size weights and KV exactly as it did.
"""

from __future__ import annotations

from mimo_operator.models.family import known_profile

MIMO_V2_FLASH = known_profile("XiaomiMiMo/MiMo-V2-Flash")
