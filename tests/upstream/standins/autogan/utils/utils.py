"""Stand-in for AutoGAN's utils.utils: the checkpoint-saving contract the adapter wraps."""
from pathlib import Path

import torch


def save_checkpoint(states, is_best, output_dir, filename="checkpoint.pth"):
    target = Path(output_dir)
    target.mkdir(parents=True, exist_ok=True)
    torch.save(states, target / filename)
