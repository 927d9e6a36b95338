using System.Runtime.InteropServices;
using EdgeSlm.Kernels.Conversion;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.MatMul;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Models.Gguf;

namespace EdgeSlm.Models.Llama;

/// <summary>
/// A weight matrix W (Rows outputs × Columns inputs): q4_0 / q8_0 through the int8 kernels (<see cref="Quantized"/>),
/// f32 / f16 through <see cref="DenseMatMul"/>. A matrix of a native type is a view into the mapped file (nothing is
/// copied); one of a storage-only type (q4_k, q6_k, bf16, ...) was converted at load into memory the weights own,
/// and <see cref="StoredType"/> says what the file holds. An untied token embedding is the exception: it is only
/// ever read a row at a time, so it stays a view in its stored type and each lookup dequantizes its row.
/// </summary>
public sealed unsafe class DecoderMatrix
{
    internal DecoderMatrix(GgufTensorInfo tensor, QuantType type, byte* data)
    {
        Name = tensor.Name;
        StoredType = tensor.Type;
        Type = type;
        Rows = (int)tensor.Rows;
        Columns = (int)tensor.Columns;
        Data = data;
        RowBytes = QuantTypeTraits.Of(Type).RowBytes(Columns);
        Quantized = QuantTypeTraits.Of(Type).IsQuantized ? QuantizedMatrix.View(Type, Rows, Columns, data, RowBytes * Rows) : null;
    }

    public string Name { get; }
    /// <summary>The type the kernels see: the stored type, or the one it was converted to at load.</summary>
    public QuantType Type { get; }
    /// <summary>The tensor's type in the file.</summary>
    public QuantType StoredType { get; }
    public bool Converted => Type != StoredType;
    /// <summary>Whether the kernels multiply <see cref="Type"/> (false only for an untied embedding kept in a storage-only type).</summary>
    public bool Multipliable => QuantTypeTraits.Of(Type).IsNative;
    public int Rows { get; }
    public int Columns { get; }
    public long RowBytes { get; }
    internal byte* Data { get; }
    internal QuantizedMatrix? Quantized { get; }

    /// <summary>Row <paramref name="row"/> of W as floats (an embedding lookup, the reference forward pass).</summary>
    public void DequantizeRow(int row, Span<float> destination) =>
        ReferenceQuantizer.Dequantize(Type, new ReadOnlySpan<byte>(Data + row * RowBytes, (int)RowBytes), destination[..Columns]);
}

/// <summary>One decoder layer's weights.</summary>
public sealed record LlamaLayerWeights(
    float[] AttentionNorm,                                   // (dim)
    DecoderMatrix Query,                                     // (n_heads * head_size, dim)
    DecoderMatrix Key,                                       // (kv_dim, dim)
    DecoderMatrix Value,                                     // (kv_dim, dim)
    float[]? QueryBias,                                      // (n_heads * head_size) qwen2 only
    float[]? KeyBias,                                        // (kv_dim) qwen2 only
    float[]? ValueBias,                                      // (kv_dim) qwen2 only
    DecoderMatrix AttentionOutput,                           // (dim, n_heads * head_size)
    float[] FeedForwardNorm,                                 // (dim)
    DecoderMatrix Gate,                                      // (hidden_dim, dim)
    DecoderMatrix Up,                                        // (hidden_dim, dim)
    DecoderMatrix Down);                                     // (dim, hidden_dim)

/// <summary>
/// All of a decoder's weights, checked against the config: each failure names the tensor. Matrices of storage-only
/// types are converted here (<see cref="LoadConversion"/>) into memory these weights own and free on
/// <see cref="Dispose"/>; the rest are views into the mapped file.
/// </summary>
public sealed unsafe class LlamaWeights : IDisposable
{
    private readonly List<nint> _owned;

    private LlamaWeights(DecoderMatrix tokenEmbedding, LlamaLayerWeights[] layers, float[] outputNorm, DecoderMatrix output, List<nint> owned, long convertedBytes, TimeSpan conversionTime)
    {
        TokenEmbedding = tokenEmbedding;
        Layers = layers;
        OutputNorm = outputNorm;
        Output = output;
        _owned = owned;
        ConvertedBytes = convertedBytes;
        ConversionTime = conversionTime;
    }

    public DecoderMatrix TokenEmbedding { get; }              // (vocab_size, dim)
    public IReadOnlyList<LlamaLayerWeights> Layers { get; }
    public float[] OutputNorm { get; }                        // (dim)
    public DecoderMatrix Output { get; }                      // (vocab_size, dim); the token embedding when tied

    /// <summary>Bytes of converted matrices, held beside the mapped file.</summary>
    public long ConvertedBytes { get; }

    /// <summary>Wall time spent converting them.</summary>
    public TimeSpan ConversionTime { get; }

    /// <summary>Every matrix, each once (the tied embedding is also the output).</summary>
    public IEnumerable<DecoderMatrix> Matrices
    {
        get
        {
            yield return TokenEmbedding;
            foreach (LlamaLayerWeights l in Layers)
            {
                yield return l.Query; yield return l.Key; yield return l.Value; yield return l.AttentionOutput;
                yield return l.Gate; yield return l.Up; yield return l.Down;
            }
            if (!ReferenceEquals(Output, TokenEmbedding))
            {
                yield return Output;
            }
        }
    }

    /// <summary>
    /// The type a loader gives the matrix named <paramref name="name"/> stored as <paramref name="stored"/>: its
    /// <see cref="QuantTypeTraits.LoadAs"/>, except an untied token embedding, which stays as it is (only rows are read).
    /// </summary>
    public static QuantType LoadedType(string name, QuantType stored, bool tiedOutput) =>
        name == LlamaGguf.TokenEmbedding && !tiedOutput ? stored : QuantTypeTraits.Of(stored).LoadAs;

    public static LlamaWeights Read(GgufFile file, LlamaConfig config)
    {
        int dim = config.HiddenSize;
        int qSize = config.HeadCount * config.HeadSize;
        int kv = config.KvSize;
        int ffn = config.FeedForwardSize;
        var owned = new List<nint>();
        long convertedBytes = 0;
        TimeSpan converting = TimeSpan.Zero;

        DecoderMatrix Matrix(string name, int rows, int columns)
        {
            GgufTensorInfo tensor = file.Tensor(name);
            if (tensor.Dimensions.Length != 2 || tensor.Columns != columns || tensor.Rows != rows)
            {
                throw new GgufFormatException($"tensor '{name}' is {tensor.Shape}, expected {columns} x {rows}");
            }
            QuantType type = LoadedType(name, tensor.Type, config.TiedOutput);
            if (type == tensor.Type)
            {
                return new DecoderMatrix(tensor, type, file.TensorPointer(tensor));
            }
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            byte* converted = Convert(file, tensor, owned, out long bytes);
            convertedBytes += bytes;
            converting += System.Diagnostics.Stopwatch.GetElapsedTime(start);
            return new DecoderMatrix(tensor, type, converted);
        }
        float[] Vector(string name, int length)
        {
            GgufTensorInfo tensor = file.Tensor(name);
            if (tensor.Dimensions.Length != 1 || tensor.Columns != length)
            {
                throw new GgufFormatException($"tensor '{name}' is {tensor.Shape}, expected {length}");
            }
            if (tensor.Type is not (QuantType.F32 or QuantType.F16 or QuantType.BF16))
            {
                throw new GgufFormatException($"tensor '{name}' is {QuantTypeTraits.Of(tensor.Type).Name}; norms and biases must be f32, f16 or bf16");
            }
            var values = new float[length];
            ReferenceQuantizer.Dequantize(tensor.Type, file.TensorBytes(tensor), values);
            foreach (float v in values)
            {
                if (!float.IsFinite(v))
                {
                    throw new GgufFormatException($"tensor '{name}' holds {v}");
                }
            }
            return values;
        }

        try
        {
            DecoderMatrix embedding = Matrix(LlamaGguf.TokenEmbedding, config.VocabularySize, dim);
            var layers = new LlamaLayerWeights[config.LayerCount];
            for (int l = 0; l < layers.Length; l++)
            {
                string B(string part) => LlamaGguf.Block(l, part);
                bool bias = config.Architecture.QkvBias;
                layers[l] = new LlamaLayerWeights(
                    Vector(B(LlamaGguf.AttentionNorm), dim),
                    Matrix(B(LlamaGguf.Query), qSize, dim),
                    Matrix(B(LlamaGguf.Key), kv, dim),
                    Matrix(B(LlamaGguf.Value), kv, dim),
                    bias ? Vector(B(LlamaGguf.QueryBias), qSize) : null,
                    bias ? Vector(B(LlamaGguf.KeyBias), kv) : null,
                    bias ? Vector(B(LlamaGguf.ValueBias), kv) : null,
                    Matrix(B(LlamaGguf.AttentionOutput), dim, qSize),
                    Vector(B(LlamaGguf.FeedForwardNorm), dim),
                    Matrix(B(LlamaGguf.Gate), ffn, dim),
                    Matrix(B(LlamaGguf.Up), ffn, dim),
                    Matrix(B(LlamaGguf.Down), dim, ffn));
            }
            float[] outputNorm = Vector(LlamaGguf.OutputNorm, dim);
            DecoderMatrix output = config.TiedOutput ? embedding : Matrix(LlamaGguf.Output, config.VocabularySize, dim);
            return new LlamaWeights(embedding, layers, outputNorm, output, owned, convertedBytes, converting);
        }
        catch
        {
            Free(owned);
            throw;
        }
    }

    /// <summary>
    /// Converts a storage-only tensor into new memory (recorded in <paramref name="owned"/> before it is filled, so a
    /// failure frees it), rows split over the machine's cores: a Q4_K_M file of Qwen2.5-0.5B's shape converts
    /// half a billion weights.
    /// </summary>
    private static byte* Convert(GgufFile file, GgufTensorInfo tensor, List<nint> owned, out long bytes)
    {
        QuantType stored = tensor.Type;
        int rows = (int)tensor.Rows, columns = (int)tensor.Columns;
        long sourceRowBytes = QuantTypeTraits.Of(stored).RowBytes(columns);
        long rowBytes = LoadConversion.ConvertedRowBytes(stored, columns);
        bytes = rowBytes * rows;
        nint destination = (nint)NativeMemory.AlignedAlloc((nuint)bytes, 64);
        owned.Add(destination);
        nint source = (nint)file.TensorPointer(tensor);
        int failedRow = int.MaxValue;
        const int RowsPerChunk = 64;
        int chunks = (rows + RowsPerChunk - 1) / RowsPerChunk;
        Parallel.For(0, chunks, () => new float[columns], (chunk, _, scratch) =>
        {
            int end = Math.Min(rows, (chunk + 1) * RowsPerChunk);
            for (int r = chunk * RowsPerChunk; r < end; r++)
            {
                var from = new ReadOnlySpan<byte>((byte*)(source + (nint)(r * sourceRowBytes)), (int)sourceRowBytes);
                var to = new Span<byte>((byte*)(destination + (nint)(r * rowBytes)), (int)rowBytes);
                if (!LoadConversion.TryConvertRow(stored, from, to, scratch))
                {
                    InterlockedMin(ref failedRow, r);
                    break;
                }
            }
            return scratch;
        }, _ => { });
        if (failedRow != int.MaxValue)
        {
            throw new GgufFormatException($"tensor '{tensor.Name}' ({QuantTypeTraits.Of(stored).Name}) row {failedRow} holds a NaN or an infinity, or values too large for {QuantTypeTraits.Of(QuantTypeTraits.Of(stored).LoadAs).Name}");
        }
        // The stored bytes are not read again: their mapped pages need not count in the resident set beside the copy.
        file.ReleasePages(tensor);
        return (byte*)destination;
    }

    private static void InterlockedMin(ref int target, int value)
    {
        int current = Volatile.Read(ref target);
        while (value < current)
        {
            int seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }
            current = seen;
        }
    }

    private static void Free(List<nint> owned)
    {
        foreach (nint p in owned)
        {
            NativeMemory.AlignedFree((void*)p);
        }
        owned.Clear();
    }

    /// <summary>Frees the converted matrices; the decoders using these weights must be done with them.</summary>
    public void Dispose() => Free(_owned);
}
