"""Public home of the intervention classes: ``from mechscope.interventions import Clamp, Add, ...``."""

from mechscope.model.interventions import (Add, Clamp, Intervention, MeanAblate, ResampleAblate, Scale, Set,
                                           TensorRef, Zero, from_json, to_json)  # fmt: skip

__all__ = ["Intervention", "Set", "Clamp", "Add", "Scale", "Zero", "MeanAblate", "ResampleAblate", "TensorRef",
           "to_json", "from_json"]
