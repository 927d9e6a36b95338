using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.MatMul;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Models.Gguf;

namespace EdgeSlm.Models.Llama;

/// <summary>
/// A weight matrix W (Rows outputs × Columns inputs) as a view into the mapped GGUF file: q4_0 / q8_0 through the
/// int8 kernels (<see cref="Quantized"/>), f32 / f16 through <see cref="DenseMatMul"/>. Nothing is copied.
/// </summary>
public sealed unsafe class DecoderMatrix
{
    internal DecoderMatrix(GgufTensorInfo tensor, byte* data)
    {
        Name = tensor.Name;
        Type = tensor.Type;
        Rows = (int)tensor.Rows;
        Columns = (int)tensor.Columns;
        Data = data;
        RowBytes = QuantTypeTraits.Of(Type).RowBytes(Columns);
        Quantized = QuantTypeTraits.Of(Type).IsQuantized ? QuantizedMatrix.View(Type, Rows, Columns, data, RowBytes * Rows) : null;
    }

    public string Name { get; }
    public QuantType Type { get; }
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

/// <summary>All of a decoder's weights, checked against the config: each failure names the tensor.</summary>
public sealed unsafe class LlamaWeights
{
    private LlamaWeights(DecoderMatrix tokenEmbedding, LlamaLayerWeights[] layers, float[] outputNorm, DecoderMatrix output)
    {
        TokenEmbedding = tokenEmbedding;
        Layers = layers;
        OutputNorm = outputNorm;
        Output = output;
    }

    public DecoderMatrix TokenEmbedding { get; }              // (vocab_size, dim)
    public IReadOnlyList<LlamaLayerWeights> Layers { get; }
    public float[] OutputNorm { get; }                        // (dim)
    public DecoderMatrix Output { get; }                      // (vocab_size, dim); the token embedding when tied

    public static LlamaWeights Read(GgufFile file, LlamaConfig config)
    {
        int dim = config.HiddenSize;
        int qSize = config.HeadCount * config.HeadSize;
        int kv = config.KvSize;
        int ffn = config.FeedForwardSize;

        DecoderMatrix Matrix(string name, int rows, int columns)
        {
            GgufTensorInfo tensor = file.Tensor(name);
            if (tensor.Dimensions.Length != 2 || tensor.Columns != columns || tensor.Rows != rows)
            {
                throw new GgufFormatException($"tensor '{name}' is {tensor.Shape}, expected {columns} x {rows}");
            }
            return new DecoderMatrix(tensor, file.TensorPointer(tensor));
        }
        float[] Vector(string name, int length)
        {
            GgufTensorInfo tensor = file.Tensor(name);
            if (tensor.Dimensions.Length != 1 || tensor.Columns != length)
            {
                throw new GgufFormatException($"tensor '{name}' is {tensor.Shape}, expected {length}");
            }
            if (tensor.Type is not (QuantType.F32 or QuantType.F16))
            {
                throw new GgufFormatException($"tensor '{name}' is {QuantTypeTraits.Of(tensor.Type).Name}; norms and biases must be f32 or f16");
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
        return new LlamaWeights(embedding, layers, outputNorm, output);
    }
}
