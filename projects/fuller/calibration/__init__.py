from .junctions import ModalityJunction, TaskJunction

__all__ = ['TaskJunction', 'ModalityJunction']
