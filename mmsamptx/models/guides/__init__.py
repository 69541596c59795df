"""Guides: components that turn an image and a class into conditioning and prompts for SAM."""
from .clip_surgery_guide import CLIPGuidance, CLIPSurgeryGuide

__all__ = ['CLIPSurgeryGuide', 'CLIPGuidance']
