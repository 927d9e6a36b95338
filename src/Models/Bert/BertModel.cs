using System.Runtime.InteropServices;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.MatMul;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Models.Gguf;

namespace EdgeSlm.Models.Bert;

/// <summary>A linear layer y = x·Wᵀ + b: W is [Rows (outputs) × Columns (inputs)], quantized or float.</summary>
public sealed class LinearWeights
{
    internal LinearWeights(string name, QuantizedMatrix? quantized, float[]? values, float[] bias, int rows, int columns, int[] outlierColumns)
    {
        Name = name;
        Quantized = quantized;
        Values = values;
        Bias = bias;
        Rows = rows;
        Columns = columns;
        OutlierColumns = outlierColumns;
        OutlierWeights = new float[outlierColumns.Length * rows];
        if (outlierColumns.Length > 0)
        {
            // Row by row: dequantizing the whole matrix at once would double the model's memory at load.
            Span<float> row = columns <= 4096 ? stackalloc float[columns] : new float[columns];
            for (int r = 0; r < rows; r++)
            {
                DequantizeRow(r, row);
                for (int i = 0; i < outlierColumns.Length; i++)
                {
                    OutlierWeights[i * rows + r] = row[outlierColumns[i]];
                }
            }
        }
    }

    public string Name { get; }
    public int Rows { get; }
    public int Columns { get; }
    public float[] Bias { get; }                   // (rows)
    internal QuantizedMatrix? Quantized { get; }   // (rows, columns) view into the mapped file, for q4_0 / q8_0
    internal float[]? Values { get; }              // (rows, columns) for f32 / f16 files

    /// <summary>Input columns whose activations stay in float (their int8 blocks would lose the other 31 values).</summary>
    public int[] OutlierColumns { get; }
    internal float[] OutlierWeights { get; }       // (outliers, rows): W[r, OutlierColumns[i]] as float

    public QuantType Type => Quantized?.Type ?? QuantType.F32;

    /// <summary>Row <paramref name="row"/> of W as floats.</summary>
    public void DequantizeRow(int row, Span<float> destination)
    {
        if (Values is not null)
        {
            Values.AsSpan(row * Columns, Columns).CopyTo(destination);
            return;
        }
        int rowBytes = (int)Quantized!.RowBytes;
        ReferenceQuantizer.Dequantize(Quantized.Type, Quantized.Bytes.Slice(row * rowBytes, rowBytes), destination[..Columns]);
    }

    /// <summary>W as floats (dequantized), row after row: for the reference forward pass and for checks.</summary>
    public float[] Dequantize()
    {
        if (Values is not null)
        {
            return Values;
        }
        var result = new float[Rows * Columns];
        ReferenceQuantizer.Dequantize(Quantized!.Type, Quantized.Bytes, result);
        return result;
    }
}

/// <summary>One encoder layer's weights.</summary>
public sealed record LayerWeights(
    LinearWeights Query, LinearWeights Key, LinearWeights Value, LinearWeights AttentionOutput,
    float[] AttentionNormWeight, float[] AttentionNormBias,
    LinearWeights FeedForwardUp, LinearWeights FeedForwardDown,
    float[] OutputNormWeight, float[] OutputNormBias);

/// <summary>
/// A BERT encoder loaded from a GGUF file: its dimensions, vocabulary and weights. Quantized weights are
/// zero-copy views into the memory-mapped file, which stays open until this model is disposed. Every
/// tensor is checked at load (presence, type, shape, finite scales), so a bad file fails here with a
/// message naming the tensor, not later inside a kernel.
/// </summary>
public sealed unsafe class BertModel : IDisposable
{
    private readonly GgufFile _file;

    private BertModel(GgufFile file)
    {
        _file = file;
        try
        {
            Config = ReadConfig(file);
            (Vocabulary, ControlTokens) = ReadVocabulary(file);
            TokenEmbeddings = file.Tensor(BertGguf.TokenEmbeddings);
            CheckShape(TokenEmbeddings, Config.HiddenSize, Config.VocabularySize);
            PositionEmbeddings = Floats(BertGguf.PositionEmbeddings, Config.HiddenSize, Config.ContextLength);
            TokenTypeEmbeddings = Floats(BertGguf.TokenTypeEmbeddings, Config.HiddenSize, Config.TokenTypeCount);
            EmbeddingNormWeight = Floats(BertGguf.EmbeddingNormWeight, Config.HiddenSize, 1);
            EmbeddingNormBias = Floats(BertGguf.EmbeddingNormBias, Config.HiddenSize, 1);
            Layers = Enumerable.Range(0, Config.LayerCount).Select(ReadLayer).ToArray();
            Name = file.Get(BertGguf.NameKey)?.Value as string ?? System.IO.Path.GetFileNameWithoutExtension(file.Path);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public string Name { get; }
    public string Path => _file.Path;
    public long FileBytes => _file.Length;
    public BertConfig Config { get; }
    public string[] Vocabulary { get; }               // WordPiece spelling: "##ing", "[CLS]"
    public bool[] ControlTokens { get; }
    public GgufTensorInfo TokenEmbeddings { get; }    // (vocabulary, hidden), any supported type
    public float[] PositionEmbeddings { get; }        // (context, hidden)
    public float[] TokenTypeEmbeddings { get; }       // (token types, hidden)
    public float[] EmbeddingNormWeight { get; }       // (hidden)
    public float[] EmbeddingNormBias { get; }         // (hidden)
    public IReadOnlyList<LayerWeights> Layers { get; }

    public IEnumerable<LinearWeights> LinearLayers => Layers.SelectMany(l => new[] { l.Query, l.Key, l.Value, l.AttentionOutput, l.FeedForwardUp, l.FeedForwardDown });

    /// <exception cref="GgufFormatException">The file is not a usable BERT GGUF file.</exception>
    public static BertModel Load(string path)
    {
        GgufFile file = GgufFile.Open(path);
        try
        {
            return new BertModel(file);
        }
        catch (GgufFormatException e) when (!e.Message.StartsWith(path, StringComparison.Ordinal))
        {
            throw new GgufFormatException($"{path}: {e.Message}");
        }
    }

    /// <summary>
    /// Like <see cref="Load"/>, but reads the file into private memory: the module's way, so that a model file
    /// replaced or overwritten while the module runs cannot change (or fault) the weights in use.
    /// </summary>
    /// <exception cref="GgufFormatException">The file is not a usable BERT GGUF file.</exception>
    public static BertModel LoadIntoMemory(string path) => Checked(GgufFile.Read(path), path);

    /// <summary>A model from a GGUF image in memory (a conversion that could not be cached); <paramref name="path"/> names it.</summary>
    /// <exception cref="GgufFormatException">The bytes are not a usable BERT GGUF file.</exception>
    public static BertModel FromGguf(ReadOnlySpan<byte> bytes, string path) => Checked(GgufFile.FromBytes(bytes, path), path);

    private static BertModel Checked(GgufFile file, string path)
    {
        try
        {
            return new BertModel(file);
        }
        catch (GgufFormatException e) when (!e.Message.StartsWith(path, StringComparison.Ordinal))
        {
            throw new GgufFormatException($"{path}: {e.Message}");
        }
    }

    /// <summary>The weights are a private copy, not a mapping of <see cref="Path"/>.</summary>
    public bool InMemory => _file.InMemory;

    /// <summary>The GGUF header, metadata and tensor table (what identifies the model, with <see cref="FileBytes"/>).</summary>
    public ReadOnlySpan<byte> GgufHeader => _file.HeaderBytes;

    /// <summary>Writes token <paramref name="id"/>'s embedding row as floats.</summary>
    public void TokenEmbedding(int id, Span<float> destination)
    {
        long rowBytes = QuantTypeTraits.Of(TokenEmbeddings.Type).RowBytes(Config.HiddenSize);
        var row = new ReadOnlySpan<byte>(_file.TensorPointer(TokenEmbeddings) + id * rowBytes, (int)rowBytes);
        ReferenceQuantizer.Dequantize(TokenEmbeddings.Type, row, destination);
    }

    private static BertConfig ReadConfig(GgufFile file)
    {
        string architecture = file.Require(BertGguf.ArchitectureKey).AsString(BertGguf.ArchitectureKey);
        if (architecture != BertGguf.Architecture)
        {
            throw new GgufFormatException($"architecture '{architecture}' is not supported (EdgeSlm runs '{BertGguf.Architecture}' encoders)");
        }
        int Int(string key, int min, int max)
        {
            long value = file.Require(key).AsInt64(key);
            return value >= min && value <= max ? (int)value : throw new GgufFormatException($"metadata '{key}' = {value} is outside {min}..{max}");
        }
        int hidden = Int(BertGguf.EmbeddingLengthKey, 32, 8192);
        int heads = Int(BertGguf.HeadCountKey, 1, 256);
        if (hidden % heads != 0 || hidden % 32 != 0)
        {
            throw new GgufFormatException($"embedding length {hidden} must be a multiple of 32 and of the head count {heads}");
        }
        long pooling = file.Get(BertGguf.PoolingTypeKey)?.AsInt64(BertGguf.PoolingTypeKey) ?? (long)Pooling.Mean;
        if (pooling is not ((long)Pooling.Mean or (long)Pooling.Cls))
        {
            throw new GgufFormatException($"pooling type {pooling} is not supported (1 = mean, 2 = cls)");
        }
        float epsilon = file.Require(BertGguf.LayerNormEpsilonKey).AsSingle(BertGguf.LayerNormEpsilonKey);
        if (!(epsilon > 0 && epsilon < 1))
        {
            throw new GgufFormatException($"layer norm epsilon {epsilon} is outside (0, 1)");
        }
        int vocabulary = file.Require(BertGguf.TokensKey).AsArray<string>(BertGguf.TokensKey).Length;
        int tokenTypes = (int)(file.Get(BertGguf.TokenTypeCountKey)?.AsInt64(BertGguf.TokenTypeCountKey) ?? 2);
        return new BertConfig(vocabulary, hidden, Int(BertGguf.BlockCountKey, 1, 128), heads,
            Int(BertGguf.FeedForwardLengthKey, 32, 65536), Int(BertGguf.ContextLengthKey, 8, 65536), tokenTypes, epsilon, (Pooling)pooling);
    }

    private static (string[] Vocabulary, bool[] Control) ReadVocabulary(GgufFile file)
    {
        string[] tokens = file.Require(BertGguf.TokensKey).AsArray<string>(BertGguf.TokensKey);
        int[] types = file.Get(BertGguf.TokenTypesKey)?.AsArray<int>(BertGguf.TokenTypesKey) ?? new int[tokens.Length];
        if (types.Length != tokens.Length)
        {
            throw new GgufFormatException($"{types.Length} token types for {tokens.Length} tokens");
        }
        bool[] control = types.Select(t => t == BertGguf.TokenTypeControl).ToArray();
        string[] vocabulary = tokens.Select((t, i) => BertGguf.FromGgufToken(t, control[i])).ToArray();
        foreach (string special in new[] { "[CLS]", "[SEP]", "[UNK]", "[PAD]" })
        {
            if (Array.IndexOf(vocabulary, special) < 0)
            {
                throw new GgufFormatException($"the vocabulary has no {special} token");
            }
        }
        return (vocabulary, control);
    }

    private LayerWeights ReadLayer(int layer) => new(
        Linear(layer, "attn_q", Config.HiddenSize, Config.HiddenSize),
        Linear(layer, "attn_k", Config.HiddenSize, Config.HiddenSize),
        Linear(layer, "attn_v", Config.HiddenSize, Config.HiddenSize),
        Linear(layer, "attn_output", Config.HiddenSize, Config.HiddenSize),
        Floats(BertGguf.Block(layer, "attn_output_norm.weight"), Config.HiddenSize, 1),
        Floats(BertGguf.Block(layer, "attn_output_norm.bias"), Config.HiddenSize, 1),
        Linear(layer, "ffn_up", Config.FeedForwardSize, Config.HiddenSize),
        Linear(layer, "ffn_down", Config.HiddenSize, Config.FeedForwardSize),
        Floats(BertGguf.Block(layer, "layer_output_norm.weight"), Config.HiddenSize, 1),
        Floats(BertGguf.Block(layer, "layer_output_norm.bias"), Config.HiddenSize, 1));

    private LinearWeights Linear(int layer, string part, int rows, int columns)
    {
        GgufTensorInfo weight = _file.Tensor(BertGguf.Block(layer, part + ".weight"));
        CheckShape(weight, columns, rows);
        float[] bias = Floats(BertGguf.Block(layer, part + ".bias"), rows, 1);
        if (QuantTypeTraits.Of(weight.Type).IsQuantized)
        {
            CheckScales(weight);
            var matrix = QuantizedMatrix.View(weight.Type, rows, columns, _file.TensorPointer(weight), weight.ByteSize);
            return new LinearWeights(weight.Name, matrix, null, bias, rows, columns, OutlierColumns(weight.Name, columns));
        }
        return new LinearWeights(weight.Name, null, ToFloats(weight), bias, rows, columns, []);
    }

    private int[] OutlierColumns(string tensor, int columns)
    {
        string key = BertGguf.ActivationOutliersKey(tensor);
        int[] outliers = _file.Get(key)?.AsArray<int>(key) ?? [];
        if (outliers.Length > 64 || outliers.Any(c => c < 0 || c >= columns) || outliers.Distinct().Count() != outliers.Length)
        {
            throw new GgufFormatException($"metadata '{key}' must list up to 64 distinct columns from 0 to {columns - 1}");
        }
        return outliers;
    }

    private float[] Floats(string name, int columns, int rows)
    {
        GgufTensorInfo tensor = _file.Tensor(name);
        CheckShape(tensor, columns, rows);
        return ToFloats(tensor);
    }

    private float[] ToFloats(GgufTensorInfo tensor)
    {
        var values = new float[tensor.ElementCount];
        ReferenceQuantizer.Dequantize(tensor.Type, _file.TensorBytes(tensor), values);
        if (!QuantTypeTraits.Of(tensor.Type).IsQuantized && values.Any(v => !float.IsFinite(v)))
        {
            throw new GgufFormatException($"tensor '{tensor.Name}' holds a NaN or infinity");
        }
        return values;
    }

    private static void CheckShape(GgufTensorInfo tensor, long columns, long rows)
    {
        bool matches = rows == 1
            ? tensor.Dimensions is [long c] && c == columns || tensor.Dimensions is [long c2, 1] && c2 == columns
            : tensor.Dimensions is [long c3, long r] && c3 == columns && r == rows;
        if (!matches)
        {
            throw new GgufFormatException($"tensor '{tensor.Name}' has shape {tensor.Shape}, expected {(rows == 1 ? $"{columns}" : $"{columns} x {rows}")}");
        }
    }

    /// <summary>The kernels convert fp16 scales without handling infinities and NaNs: refuse them here.</summary>
    private void CheckScales(GgufTensorInfo tensor)
    {
        int blockBytes = QuantTypeTraits.Of(tensor.Type).BlockBytes;
        byte* data = _file.TensorPointer(tensor);
        long blocks = tensor.ByteSize / blockBytes;
        for (long b = 0; b < blocks; b++)
        {
            ushort bits = *(ushort*)(data + b * blockBytes);
            if ((bits & 0x7C00) == 0x7C00)
            {
                throw new GgufFormatException($"tensor '{tensor.Name}' block {b} has a non-finite scale");
            }
        }
    }

    public void Dispose()
    {
        foreach (LinearWeights linear in LinearLayers)
        {
            linear.Quantized?.Dispose();
        }
        _file.Dispose();
    }
}
