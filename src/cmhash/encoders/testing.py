"""A tiny random CLIP checkpoint built offline, so tests and demos exercise the real loading code.

It is saved in the hub's layout (config.json, model.safetensors, tokenizer files,
preprocessor_config.json): the same files `huggingface-cli download` puts on disk for a real CLIP.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def build_tiny_clip(directory: str | os.PathLike, *, seed: int = 0, max_length: int = 16,
                    image_size: int = 32, projection_dim: int = 16, patch_size: int = 8) -> Path:
    """Write a random CLIP (2 layers, width 32) with a byte-level tokenizer to ``directory``; return it.

    The vocabulary is the 256 byte symbols, each also as a word end, plus BOS/EOS (no merges), so any
    text tokenizes without unknown tokens and one character is one token: a caption longer than
    ``max_length - 2`` characters is truncated.
    """
    from tokenizers import pre_tokenizers
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    symbols = alphabet + [a + "</w>" for a in alphabet] + [BOS, EOS]
    (directory / "vocab.json").write_text(json.dumps({s: i for i, s in enumerate(symbols)}))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer.from_pretrained(directory, local_files_only=True, model_max_length=max_length)
    tokenizer.save_pretrained(directory)

    CLIPImageProcessor(size={"shortest_edge": image_size},
                       crop_size={"height": image_size, "width": image_size}).save_pretrained(directory)

    width = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    config = CLIPConfig(
        text_config=dict(width, vocab_size=len(symbols), max_position_embeddings=max_length,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(width, image_size=image_size, patch_size=patch_size),
        projection_dim=projection_dim,
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(directory)
    return directory
