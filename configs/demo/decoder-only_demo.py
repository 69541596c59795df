# Demo baseline: point prompts only, SAM's mask decoder fine-tuned.
_base_ = ['./_base_demo.py']
