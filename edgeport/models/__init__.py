"""Model registry and architectures (teachers, students, torchvision, user factories)."""

from edgeport.models.registry import MODELS, ModelSpec, build_model, list_models, register_model

__all__ = ["MODELS", "ModelSpec", "build_model", "list_models", "register_model"]
