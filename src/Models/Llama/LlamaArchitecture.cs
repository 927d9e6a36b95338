using EdgeSlm.Kernels.Positional;

namespace EdgeSlm.Models.Llama;

/// <summary>
/// What distinguishes one decoder family from another, as data (llama.cpp keeps the same facts in its
/// architecture table, <c>llama-arch.cpp</c>, and in <c>llama_model_rope_type</c>): the name the GGUF keys are
/// prefixed with, how RoPE pairs the dimensions, and whether the query, key and value projections have biases.
/// </summary>
public sealed record LlamaArchitecture(string Name, RopeLayout Rope, bool QkvBias)
{
    /// <summary>Llama 2/3, SmolLM2, TinyLlama: adjacent RoPE pairs, no biases.</summary>
    public static readonly LlamaArchitecture Llama = new("llama", RopeLayout.Interleaved, QkvBias: false);

    /// <summary>Qwen2 and Qwen2.5: RoPE on the two halves of a head, biases on Q, K and V.</summary>
    public static readonly LlamaArchitecture Qwen2 = new("qwen2", RopeLayout.Halves, QkvBias: true);

    public static IReadOnlyList<LlamaArchitecture> All { get; } = [Llama, Qwen2];

    public static LlamaArchitecture? Find(string name) => All.FirstOrDefault(a => a.Name == name);

    /// <summary>The architecture's metadata key for <paramref name="suffix"/>: <c>llama.embedding_length</c>.</summary>
    public string Key(string suffix) => Name + "." + suffix;
}

/// <summary>llama.cpp's GGUF key suffixes and tensor names for the decoders (<c>LLM_KV_*</c>, <c>LLM_TENSOR_*</c>).</summary>
public static class LlamaGguf
{
    public const string ArchitectureKey = "general.architecture";
    public const string NameKey = "general.name";
    public const string FileTypeKey = "general.file_type";

    // Prefixed with the architecture's name.
    public const string ContextLength = "context_length";
    public const string EmbeddingLength = "embedding_length";
    public const string BlockCount = "block_count";
    public const string FeedForwardLength = "feed_forward_length";
    public const string HeadCount = "attention.head_count";
    public const string HeadCountKv = "attention.head_count_kv";
    public const string RmsEpsilon = "attention.layer_norm_rms_epsilon";
    public const string RopeFrequencyBase = "rope.freq_base";
    public const string RopeDimensionCount = "rope.dimension_count";
    public const string VocabularySize = "vocab_size";

    public const string TokenEmbedding = "token_embd.weight";
    public const string OutputNorm = "output_norm.weight";
    public const string Output = "output.weight";

    public static string Block(int layer, string part) => $"blk.{layer}.{part}";

    public const string AttentionNorm = "attn_norm.weight";
    public const string Query = "attn_q.weight";
    public const string Key = "attn_k.weight";
    public const string Value = "attn_v.weight";
    public const string QueryBias = "attn_q.bias";
    public const string KeyBias = "attn_k.bias";
    public const string ValueBias = "attn_v.bias";
    public const string AttentionOutput = "attn_output.weight";
    public const string FeedForwardNorm = "ffn_norm.weight";
    public const string Gate = "ffn_gate.weight";
    public const string Up = "ffn_up.weight";
    public const string Down = "ffn_down.weight";
}
