using System.Runtime.InteropServices;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Models.Gguf;
using EdgeSlm.Models.Llama;

namespace EdgeSlm.Testing;

/// <summary>A decoder's shape and GGUF identity for <see cref="SyntheticDecoder"/>.</summary>
public sealed record DecoderShape(string Architecture, int Hidden, int Layers, int Heads, int KvHeads, int FeedForward,
    float RopeBase, float RmsEpsilon, int Context, bool Tied, string Pre, bool AddBos,
    string TokenizerModel = "gpt2", bool AddSpacePrefix = true)
{
    /// <summary>A two-layer llama for unit tests: 4 heads of hidden / 4, 2 KV heads (grouped-query), FFN 3 · hidden.
    /// Hidden 256 makes every row a whole number of k-quant super-blocks.</summary>
    public static DecoderShape TinyLlama(bool tied = true, int hidden = 64) => new("llama", hidden, 2, 4, 2, 3 * hidden, 10000f, 1e-5f, 512, tied, "smollm", AddBos: false);

    /// <summary>
    /// A two-layer llama with the SentencePiece vocabulary trained on our sentences (<see cref="SentencePieceVocabulary"/>,
    /// <c>tokenizer.ggml.model</c> = <c>llama</c>), BOS added and a space prefix by default, as Llama 2's files say.
    /// </summary>
    public static DecoderShape TinyLlamaSentencePiece(bool addBos = true, bool addSpacePrefix = true) =>
        new("llama", 64, 2, 4, 2, 192, 10000f, 1e-5f, 512, Tied: true, Pre: "spm", addBos, "llama", addSpacePrefix);

    /// <summary>A two-layer qwen2 (QKV biases, NEOX RoPE) for unit tests.</summary>
    public static DecoderShape TinyQwen2(bool tied = true, int hidden = 64) => new("qwen2", hidden, 2, 4, 2, 3 * hidden, 1e6f, 1e-6f, 512, tied, "qwen2", AddBos: false);

    /// <summary>SmolLM2-135M's shape: hidden 576, 30 layers, 9 heads / 3 KV heads, FFN 1536, RoPE base 100000, tied.</summary>
    public static DecoderShape SmolLM2_135M => new("llama", 576, 30, 9, 3, 1536, 100000f, 1e-5f, 8192, true, "smollm", AddBos: false);

    /// <summary>Qwen2.5-0.5B's shape: hidden 896, 24 layers, 14 heads / 2 KV heads, FFN 4864, QKV bias, RoPE base 1e6, tied.</summary>
    public static DecoderShape Qwen25_05B => new("qwen2", 896, 24, 14, 2, 4864, 1e6f, 1e-6f, 32768, true, "qwen2", AddBos: false);

    public int HeadSize => Hidden / Heads;
}

/// <summary>
/// The type of each matrix of a synthetic decoder: one type for all, or a mix chosen as llama.cpp's
/// <c>llama_tensor_get_type</c> chooses it for a "Q4_K_M" file. As there, a k-quant chosen for a matrix whose rows
/// are not a whole number of 256-element super-blocks falls back to q5_0 (for q4_k), q5_1 (q5_k) or q8_0 (q6_k).
/// </summary>
/// <param name="Name">Part of the cached file's name.</param>
/// <param name="Default">The type of every matrix the mix does not single out.</param>
/// <param name="FileType">llama.cpp's <c>general.file_type</c> (<c>llama_ftype</c>) for the mix.</param>
/// <param name="KQuantMedium">Q4_K_M's rule: q6_k for the output matrix (the token embedding when tied), and for
/// attn_v and ffn_down in the layers <c>use_more_bits</c> picks (the first and last eighth and every third between).</param>
public sealed record WeightTypes(string Name, QuantType Default, int FileType, bool KQuantMedium = false)
{
    public static WeightTypes Uniform(QuantType type) => new(QuantTypeTraits.Of(type).Name, type, type switch
    {
        QuantType.F32 => 0,
        QuantType.F16 => 1,
        QuantType.Q4_0 => 2,
        QuantType.Q8_0 => 7,
        QuantType.Q5_0 => 8,
        QuantType.Q5_1 => 9,
        QuantType.Q4_K => 14, // MOSTLY_Q4_K_S
        QuantType.Q5_K => 16, // MOSTLY_Q5_K_S
        QuantType.Q6_K => 18,
        QuantType.BF16 => 32,
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    });

    /// <summary>llama.cpp's LLAMA_FTYPE_MOSTLY_Q4_K_M (15).</summary>
    public static WeightTypes Q4_K_M { get; } = new("q4_k_m", QuantType.Q4_K, 15, KQuantMedium: true);

    public static WeightTypes Parse(string name) =>
        name == Q4_K_M.Name ? Q4_K_M : Uniform(QuantTypeTraits.Parse(name).Type);

    /// <summary>The type of matrix <paramref name="tensor"/> (layer <paramref name="layer"/>, -1 outside the layers).</summary>
    public QuantType For(string tensor, int layer, int layers, int columns, bool tied)
    {
        QuantType type = Default;
        if (KQuantMedium)
        {
            bool output = tensor == LlamaGguf.Output || (tied && tensor == LlamaGguf.TokenEmbedding);
            bool moreBits = layer >= 0 && (tensor.EndsWith(LlamaGguf.Value, StringComparison.Ordinal) || tensor.EndsWith(LlamaGguf.Down, StringComparison.Ordinal))
                && (layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2);
            type = output || moreBits ? QuantType.Q6_K : Default;
        }
        if (columns % 256 != 0)
        {
            type = type switch
            {
                QuantType.Q4_K => QuantType.Q5_0,
                QuantType.Q5_K => QuantType.Q5_1,
                QuantType.Q6_K => QuantType.Q8_0,
                _ => type,
            };
        }
        return type;
    }
}

/// <summary>
/// Writes llama / qwen2 GGUF files with random weights scaled like a trained model's (unit-variance activations
/// through the layers, residual branches scaled by 1/√(2·layers), embeddings giving logits with a spread of a few
/// units, norms near 1) and a real vocabulary with the metadata llama.cpp's loader expects: GPT-2's byte-level BPE,
/// or (<see cref="DecoderShape.TokenizerModel"/> = <c>llama</c>) the SentencePiece one trained on our sentences. Fixed seeds:
/// the same arguments give the same bytes.
/// </summary>
public static class SyntheticDecoder
{
    /// <summary>Part of the cached files' names: raise it when the generated bytes change.</summary>
    public const int GeneratorVersion = 1;

    /// <summary>Writes the file (if it is not there yet) and returns its path.</summary>
    public static string Write(string path, DecoderShape shape, QuantType type, int seed = 1, Action<string, float[]>? adjust = null, string? chatTemplate = null) =>
        Write(path, shape, WeightTypes.Uniform(type), seed, adjust, chatTemplate);

    /// <summary>Writes the file (if it is not there yet) and returns its path.</summary>
    /// <param name="adjust">Changes a tensor's values (row-major, one row per output unit or token) before they are written: a test's hand-set weights (native types and bf16 only).</param>
    /// <param name="chatTemplate">A <c>tokenizer.chat_template</c> to carry; null: none.</param>
    public static string Write(string path, DecoderShape shape, WeightTypes types, int seed = 1, Action<string, float[]>? adjust = null, string? chatTemplate = null)
    {
        if (File.Exists(path))
        {
            return path;
        }
        var random = new Random(seed);
        bool sentencePiece = shape.TokenizerModel == "llama";
        string[] tokens = sentencePiece ? SentencePieceVocabulary.Tokens : Gpt2Vocabulary.Tokens;
        int vocabulary = tokens.Length;
        string arch = shape.Architecture;
        var writer = new GgufWriter()
            .Add(LlamaGguf.ArchitectureKey, GgufValue.Of(arch))
            .Add(LlamaGguf.NameKey, GgufValue.Of($"synthetic-{arch}-{shape.Hidden}x{shape.Layers}"))
            .Add(LlamaGguf.FileTypeKey, GgufValue.Of((uint)types.FileType))
            .Add($"{arch}.{LlamaGguf.ContextLength}", GgufValue.Of((uint)shape.Context))
            .Add($"{arch}.{LlamaGguf.EmbeddingLength}", GgufValue.Of((uint)shape.Hidden))
            .Add($"{arch}.{LlamaGguf.BlockCount}", GgufValue.Of((uint)shape.Layers))
            .Add($"{arch}.{LlamaGguf.FeedForwardLength}", GgufValue.Of((uint)shape.FeedForward))
            .Add($"{arch}.{LlamaGguf.HeadCount}", GgufValue.Of((uint)shape.Heads))
            .Add($"{arch}.{LlamaGguf.HeadCountKv}", GgufValue.Of((uint)shape.KvHeads))
            .Add($"{arch}.{LlamaGguf.RopeFrequencyBase}", GgufValue.Of(shape.RopeBase))
            .Add($"{arch}.{LlamaGguf.RmsEpsilon}", GgufValue.Of(shape.RmsEpsilon))
            .Add($"{arch}.{LlamaGguf.RopeDimensionCount}", GgufValue.Of((uint)shape.HeadSize));
        if (sentencePiece)
        {
            writer.Add("tokenizer.ggml.model", GgufValue.Of("llama"))
                .Add("tokenizer.ggml.tokens", GgufValue.Of(tokens))
                .Add("tokenizer.ggml.scores", GgufValue.Of(SentencePieceVocabulary.Scores))
                .Add("tokenizer.ggml.token_type", GgufValue.Of(SentencePieceVocabulary.TokenTypes))
                .Add("tokenizer.ggml.bos_token_id", GgufValue.Of((uint)SentencePieceVocabulary.BosId))
                .Add("tokenizer.ggml.eos_token_id", GgufValue.Of((uint)SentencePieceVocabulary.EosId))
                .Add("tokenizer.ggml.unknown_token_id", GgufValue.Of((uint)SentencePieceVocabulary.UnknownId))
                .Add("tokenizer.ggml.add_bos_token", GgufValue.Of(shape.AddBos))
                .Add("tokenizer.ggml.add_space_prefix", GgufValue.Of(shape.AddSpacePrefix));
        }
        else
        {
            int[] tokenTypes = tokens.Select((_, i) => i >= Gpt2Vocabulary.EndOfTextId ? 3 : 1).ToArray();
            writer.Add("tokenizer.ggml.model", GgufValue.Of("gpt2"))
                .Add("tokenizer.ggml.pre", GgufValue.Of(shape.Pre))
                .Add("tokenizer.ggml.tokens", GgufValue.Of(tokens))
                .Add("tokenizer.ggml.token_type", GgufValue.Of(tokenTypes))
                .Add("tokenizer.ggml.merges", GgufValue.Of(Gpt2Vocabulary.Merges))
                .Add("tokenizer.ggml.bos_token_id", GgufValue.Of((uint)Gpt2Vocabulary.EndOfTextId))
                .Add("tokenizer.ggml.eos_token_id", GgufValue.Of((uint)Gpt2Vocabulary.EndOfTextId))
                .Add("tokenizer.ggml.add_bos_token", GgufValue.Of(shape.AddBos));
        }
        if (chatTemplate is not null)
        {
            writer.Add(ChatTemplate.MetadataKey, GgufValue.Of(chatTemplate));
        }

        int dim = shape.Hidden;
        int qSize = shape.Heads * shape.HeadSize;
        int kv = shape.KvHeads * shape.HeadSize;
        int ffn = shape.FeedForward;
        float residual = 1f / MathF.Sqrt(2 * shape.Layers);

        int layer = -1;
        void Matrix(string name, int rows, int columns, float std)
        {
            QuantType type = types.For(name, layer, shape.Layers, columns, shape.Tied);
            byte[] data;
            if (QuantTypeTraits.Of(type).IsNative || type == QuantType.BF16)
            {
                float[] values = Normal(random, rows * columns, std);
                adjust?.Invoke(name, values);
                data = Encode(type, values, columns);
            }
            else
            {
                data = RandomBlocks.Rows(type, rows, columns, std, random);
            }
            writer.AddTensor(name, type, [columns, rows], data);
        }
        void Vector(string name, int length, float mean, float std)
        {
            float[] values = Normal(random, length, std);
            for (int i = 0; i < values.Length; i++) values[i] += mean;
            adjust?.Invoke(name, values);
            writer.AddTensor(name, QuantType.F32, [length], MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
        }

        Matrix(LlamaGguf.TokenEmbedding, vocabulary, dim, 3f / MathF.Sqrt(dim));
        for (int l = 0; l < shape.Layers; l++)
        {
            layer = l;
            string B(string part) => LlamaGguf.Block(l, part);
            Vector(B(LlamaGguf.AttentionNorm), dim, 1f, 0.1f);
            Matrix(B(LlamaGguf.Query), qSize, dim, 1f / MathF.Sqrt(dim));
            Matrix(B(LlamaGguf.Key), kv, dim, 1f / MathF.Sqrt(dim));
            Matrix(B(LlamaGguf.Value), kv, dim, 1f / MathF.Sqrt(dim));
            if (arch == "qwen2")
            {
                Vector(B(LlamaGguf.QueryBias), qSize, 0f, 0.3f);
                Vector(B(LlamaGguf.KeyBias), kv, 0f, 0.3f);
                Vector(B(LlamaGguf.ValueBias), kv, 0f, 0.1f);
            }
            Matrix(B(LlamaGguf.AttentionOutput), dim, qSize, residual / MathF.Sqrt(qSize));
            Vector(B(LlamaGguf.FeedForwardNorm), dim, 1f, 0.1f);
            Matrix(B(LlamaGguf.Gate), ffn, dim, 1f / MathF.Sqrt(dim));
            Matrix(B(LlamaGguf.Up), ffn, dim, 1f / MathF.Sqrt(dim));
            Matrix(B(LlamaGguf.Down), dim, ffn, 2f * residual / MathF.Sqrt(ffn));
        }
        layer = -1;
        Vector(LlamaGguf.OutputNorm, dim, 1f, 0.1f);
        if (!shape.Tied)
        {
            Matrix(LlamaGguf.Output, vocabulary, dim, 3f / MathF.Sqrt(dim));
        }
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
        writer.WriteTo(path);
        return path;
    }

    /// <summary>A file in the shared temporary folder of the test run, named after its arguments.</summary>
    public static string Cached(DecoderShape shape, QuantType type, int seed = 1) => Cached(shape, WeightTypes.Uniform(type), seed);

    /// <summary>A file in the shared temporary folder of the test run, named after its arguments.</summary>
    public static string Cached(DecoderShape shape, WeightTypes types, int seed = 1)
    {
        string tokenizer = shape.TokenizerModel == "llama"
            ? $"spm{SentencePieceVocabulary.TrainerVersion}{(shape.AddBos ? "-bos" : "")}{(shape.AddSpacePrefix ? "-prefix" : "")}"
            : shape.Pre;
        string name = $"v{GeneratorVersion}-{shape.Architecture}-{shape.Hidden}x{shape.Layers}-{(shape.Tied ? "tied" : "untied")}-{tokenizer}-{types.Name}-s{seed}.gguf";
        string path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "edgeslm-decoder-tests", name);
        lock (typeof(SyntheticDecoder))
        {
            return Write(path, shape, types, seed);
        }
    }

    private static float[] Normal(Random random, int count, float std)
    {
        var values = new float[count];
        for (int i = 0; i < count; i += 2)
        {
            double u1 = 1.0 - random.NextDouble();
            double u2 = random.NextDouble();
            double r = Math.Sqrt(-2.0 * Math.Log(u1));
            values[i] = (float)(r * Math.Cos(2 * Math.PI * u2) * std);
            if (i + 1 < count) values[i + 1] = (float)(r * Math.Sin(2 * Math.PI * u2) * std);
        }
        return values;
    }

    private static byte[] Encode(QuantType type, float[] values, int columns)
    {
        switch (type)
        {
            case QuantType.F32:
                return MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
            case QuantType.F16:
                var halves = new Half[values.Length];
                for (int i = 0; i < values.Length; i++) halves[i] = (Half)values[i];
                return MemoryMarshal.AsBytes(halves.AsSpan()).ToArray();
            case QuantType.BF16:
                // Round to nearest even, as ggml's GGML_FP32_TO_BF16 (the values are finite).
                var bf16 = new ushort[values.Length];
                for (int i = 0; i < values.Length; i++)
                {
                    uint bits = BitConverter.SingleToUInt32Bits(values[i]);
                    bf16[i] = (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
                }
                return MemoryMarshal.AsBytes(bf16.AsSpan()).ToArray();
            default:
                QuantTypeTraits traits = QuantTypeTraits.Of(type);
                int rowBytes = (int)traits.RowBytes(columns);
                int rows = values.Length / columns;
                var bytes = new byte[(long)rowBytes * rows];
                for (int r = 0; r < rows; r++)
                {
                    traits.Quantize(values.AsSpan(r * columns, columns), bytes.AsSpan(r * rowBytes, rowBytes));
                }
                return bytes;
        }
    }
}
