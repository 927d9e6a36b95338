using EdgeSlm.Models.Gguf;

namespace EdgeSlm.Models.Llama;

/// <summary>A decoder's dimensions, from its GGUF keys (<c>{arch}.embedding_length</c> ...).</summary>
public sealed record LlamaConfig
{
    public required LlamaArchitecture Architecture { get; init; }
    public required int VocabularySize { get; init; }
    public required int HiddenSize { get; init; }        // dim
    public required int LayerCount { get; init; }
    public required int HeadCount { get; init; }
    public required int KvHeadCount { get; init; }
    public required int FeedForwardSize { get; init; }   // hidden_dim of the SwiGLU
    public required int ContextLength { get; init; }     // the context the model was trained for
    public required float RopeBase { get; init; }
    public required float RmsEpsilon { get; init; }
    public required bool TiedOutput { get; init; }       // no output.weight: the token embedding is the output matrix

    public int HeadSize => HiddenSize / HeadCount;
    public int KvSize => KvHeadCount * HeadSize;          // kv_dim: one position's keys (or values), all KV heads

    /// <summary>Reads and checks the hyperparameters; every failure names the key.</summary>
    public static LlamaConfig Read(GgufFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        string name = file.Require(LlamaGguf.ArchitectureKey).AsString(LlamaGguf.ArchitectureKey);
        LlamaArchitecture architecture = LlamaArchitecture.Find(name)
            ?? throw new GgufFormatException($"metadata '{LlamaGguf.ArchitectureKey}' = '{name}' is not a decoder EdgeSlm runs ({string.Join(", ", LlamaArchitecture.All.Select(a => a.Name))})");

        int Int(string suffix, int min, int max, int? fallback = null)
        {
            string key = architecture.Key(suffix);
            GgufValue? value = file.Get(key);
            if (value is null)
            {
                return fallback ?? throw new GgufFormatException($"metadata '{key}' is missing");
            }
            long v = value.AsInt64(key);
            return v >= min && v <= max ? (int)v : throw new GgufFormatException($"metadata '{key}' = {v} is outside {min}..{max}");
        }
        float Float(string suffix, float min, float max, float? fallback = null)
        {
            string key = architecture.Key(suffix);
            GgufValue? value = file.Get(key);
            if (value is null)
            {
                return fallback ?? throw new GgufFormatException($"metadata '{key}' is missing");
            }
            float v = value.AsSingle(key);
            return v >= min && v <= max ? v : throw new GgufFormatException($"metadata '{key}' = {v} is outside {min}..{max}");
        }

        int hidden = Int(LlamaGguf.EmbeddingLength, 32, 65536);
        int heads = Int(LlamaGguf.HeadCount, 1, 1024);
        int kvHeads = Int(LlamaGguf.HeadCountKv, 1, 1024, fallback: heads);
        if (hidden % heads != 0 || hidden / heads % 2 != 0)
        {
            throw new GgufFormatException($"metadata '{architecture.Key(LlamaGguf.EmbeddingLength)}' = {hidden} is not an even head size times '{architecture.Key(LlamaGguf.HeadCount)}' = {heads}");
        }
        if (heads % kvHeads != 0)
        {
            throw new GgufFormatException($"metadata '{architecture.Key(LlamaGguf.HeadCountKv)}' = {kvHeads} does not divide '{architecture.Key(LlamaGguf.HeadCount)}' = {heads}");
        }
        int ropeDimensions = Int(LlamaGguf.RopeDimensionCount, 2, 65536, fallback: hidden / heads);
        if (ropeDimensions != hidden / heads)
        {
            throw new GgufFormatException($"metadata '{architecture.Key(LlamaGguf.RopeDimensionCount)}' = {ropeDimensions}: EdgeSlm rotates whole heads of {hidden / heads}");
        }

        GgufTensorInfo embedding = file.Tensor(LlamaGguf.TokenEmbedding);
        if (embedding.Dimensions.Length != 2 || embedding.Rows < 1 || embedding.Rows > 1 << 24)
        {
            throw new GgufFormatException($"tensor '{LlamaGguf.TokenEmbedding}' is {embedding.Shape}, not {hidden} x (1 to {1 << 24} tokens)");
        }
        int vocabulary = (int)embedding.Rows;
        int declaredVocabulary = Int(LlamaGguf.VocabularySize, 1, 1 << 24, fallback: vocabulary);
        if (declaredVocabulary != vocabulary)
        {
            throw new GgufFormatException($"metadata '{architecture.Key(LlamaGguf.VocabularySize)}' = {declaredVocabulary} but tensor '{LlamaGguf.TokenEmbedding}' has {vocabulary} rows");
        }

        return new LlamaConfig
        {
            Architecture = architecture,
            VocabularySize = vocabulary,
            HiddenSize = hidden,
            LayerCount = Int(LlamaGguf.BlockCount, 1, 1024),
            HeadCount = heads,
            KvHeadCount = kvHeads,
            FeedForwardSize = Int(LlamaGguf.FeedForwardLength, 1, 1 << 20),
            ContextLength = Int(LlamaGguf.ContextLength, 1, 1 << 24),
            RopeBase = Float(LlamaGguf.RopeFrequencyBase, 1f, 1e12f, fallback: 10000f),
            RmsEpsilon = Float(LlamaGguf.RmsEpsilon, 0f, 1f),
            TiedOutput = !file.TryGetTensor(LlamaGguf.Output, out _),
        };
    }
}
