"""Writes a tiny random-weight llama GGUF (2 layers, 64 wide) with the tokenizer and chat template of
another GGUF (SmolLM2's), so llama-server serves its real API at a fraction of the CPU cost. Its text
is meaningless. Run by `fleetmedic toolchain --inference` from a venv with the pinned `gguf` package:

    python tiny-gguf.py SOURCE.gguf OUT.gguf
"""

import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter

LAYERS = 2
WIDTH = 64
HEADS = 4
FFN = 128
CONTEXT = 2048
SEED = 15


def copy_tokenizer(reader: GGUFReader, writer: GGUFWriter) -> int:
    """Copies every tokenizer.* key; returns the vocabulary size."""
    vocab = 0
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = GGUFValueType(field.types[0])
        value = field.contents()
        sub_type = GGUFValueType(field.types[1]) if vtype == GGUFValueType.ARRAY else None
        if key == "tokenizer.ggml.tokens":
            vocab = len(value)
        writer.add_key_value(key, value, vtype, sub_type)
    if vocab == 0:
        raise SystemExit("the source GGUF has no tokenizer.ggml.tokens")
    return vocab


def main(source: str, out: str) -> None:
    reader = GGUFReader(source)
    writer = GGUFWriter(out, "llama")
    writer.add_name("fleetmedic-tiny-llama")
    writer.add_block_count(LAYERS)
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(WIDTH)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_rope_dimension_count(WIDTH // HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(1)  # mostly F16
    vocab = copy_tokenizer(reader, writer)
    writer.add_vocab_size(vocab)

    rng = np.random.default_rng(SEED)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float16)

    # No output.weight: llama.cpp ties the output to the token embedding.
    writer.add_tensor("token_embd.weight", weight(vocab, WIDTH))
    writer.add_tensor("output_norm.weight", np.ones(WIDTH, dtype=np.float32))
    for i in range(LAYERS):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(WIDTH, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"blk.{i}.{name}.weight", weight(WIDTH, WIDTH))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(WIDTH, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", weight(FFN, WIDTH))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", weight(FFN, WIDTH))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", weight(WIDTH, FFN))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
