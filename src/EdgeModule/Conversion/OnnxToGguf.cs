using System.Text.RegularExpressions;
using EdgeSlm.EdgeModule.Gguf;
using EdgeSlm.EdgeModule.Model;
using EdgeSlm.EdgeModule.Onnx;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;

namespace EdgeSlm.EdgeModule.Conversion;

/// <summary>Which GGUF type each kind of tensor gets.</summary>
/// <param name="Linear">The weights of the 36 linear layers (attention and feed-forward).</param>
/// <param name="TokenEmbeddings">The word-embedding table, the largest tensor (30522 × 384).</param>
/// <param name="Overrides">Per-tensor exceptions, by GGUF name (e.g. the most quantization-sensitive layers in q8_0).</param>
public sealed record TensorTypes(QuantType Linear, QuantType TokenEmbeddings, IReadOnlyDictionary<string, QuantType> Overrides)
{
    /// <summary>The types for a <c>--type</c> choice: see docs/performance.md for the measurements behind the defaults.</summary>
    public static TensorTypes For(QuantType type) => type switch
    {
        QuantType.Q4_0 => new(QuantType.Q4_0, QuantType.Q4_0, Q4_0Overrides),
        QuantType.Q8_0 => new(QuantType.Q8_0, QuantType.Q8_0, NoOverrides),
        QuantType.F16 => new(QuantType.F16, QuantType.F16, NoOverrides),
        _ => new(QuantType.F32, QuantType.F32, NoOverrides),
    };

    private static readonly Dictionary<string, QuantType> NoOverrides = new();

    // The linear layers kept in q8_0 in the default q4_0 file: the ten whose q4_0 error costs the most cosine
    // to ONNX Runtime (late layers, value projections and feed-forward), chosen greedily on all-MiniLM-L6-v2 and
    // arctic-embed-xs by the worst sentence. The token-embedding table, 30% of a file with it in q8_0, costs
    // little in q4_0. Measurements: docs/performance.md.
    private static readonly Dictionary<string, QuantType> Q4_0Overrides = new[]
    {
        "blk.5.attn_v", "blk.4.ffn_up", "blk.4.attn_v", "blk.4.ffn_down", "blk.3.ffn_up",
        "blk.2.ffn_up", "blk.3.attn_v", "blk.1.ffn_up", "blk.3.ffn_down", "blk.5.ffn_down",
    }.ToDictionary(name => name + ".weight", _ => QuantType.Q8_0);

    /// <summary>Plain Q4_0 everywhere, as llama.cpp's quantizer would make it (for measurements).</summary>
    public static TensorTypes PlainQ4_0 { get; } = new(QuantType.Q4_0, QuantType.Q4_0, NoOverrides);

    public QuantType TypeOf(string ggufName, QuantType defaultType) =>
        Overrides.TryGetValue(ggufName, out QuantType type) ? type : defaultType;

    /// <summary>ggml's <c>general.file_type</c> (llama_ftype) for the dominant type.</summary>
    public uint FileType => Linear switch
    {
        QuantType.F32 => 0,
        QuantType.F16 => 1,
        QuantType.Q4_0 => 2,
        QuantType.Q8_0 => 7,
        _ => 0,
    };
}

/// <summary>
/// Converts a BERT-family ONNX export (Hugging Face / sentence-transformers layout) to a GGUF file that
/// llama.cpp loads as <c>bert</c>. Linear weights are found through the graph, not by name: each bias
/// initializer (<c>encoder.layer.N.attention.self.query.bias</c>, ...) is added to the output of a MatMul whose
/// other input is the weight, stored [in, out]; GGUF wants [out rows × in columns], so it is transposed.
/// </summary>
public static partial class OnnxToGguf
{
    private static readonly (string OnnxBias, string GgufPart)[] LinearLayers =
    [
        ("attention.self.query", "attn_q"),
        ("attention.self.key", "attn_k"),
        ("attention.self.value", "attn_v"),
        ("attention.output.dense", "attn_output"),
        ("intermediate.dense", "ffn_up"),
        ("output.dense", "ffn_down"),
    ];

    private static readonly (string Onnx, string Gguf)[] LayerNorms =
    [
        ("attention.output.LayerNorm", "attn_output_norm"),
        ("output.LayerNorm", "layer_output_norm"),
    ];

    /// <summary>
    /// Converts and writes <paramref name="path"/>. For quantized files the model is written once, calibrated
    /// (<see cref="OutlierCalibration"/>) and written again with its activation-outlier columns.
    /// </summary>
    public static void ConvertTo(string path, OnnxModel onnx, string[] vocabulary, string modelName, Pooling pooling, TensorTypes types, Action<string, int, int>? progress = null)
    {
        GgufWriter writer = Convert(onnx, vocabulary, modelName, pooling, types, progress);
        if (!QuantTypeTraits.Of(types.Linear).IsQuantized)
        {
            writer.WriteTo(path);
            return;
        }
        string uncalibrated = path + ".uncalibrated";
        try
        {
            writer.WriteTo(uncalibrated);
            foreach ((string tensor, int[] columns) in OutlierCalibration.Find(uncalibrated).OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                writer.Add(BertGguf.ActivationOutliersKey(tensor), GgufValue.Of(columns));
            }
        }
        finally
        {
            File.Delete(uncalibrated);
        }
        writer.WriteTo(path);
    }

    /// <summary>
    /// <see cref="ConvertTo"/> without touching the disk: the GGUF image, calibrated the same way, as bytes. For a
    /// cache directory that is read-only or full; <paramref name="name"/> names the model in messages.
    /// </summary>
    public static byte[] ConvertInMemory(OnnxModel onnx, string[] vocabulary, string modelName, Pooling pooling, TensorTypes types, string name)
    {
        GgufWriter writer = Convert(onnx, vocabulary, modelName, pooling, types);
        byte[] image = Image(writer);
        if (!QuantTypeTraits.Of(types.Linear).IsQuantized)
        {
            return image;
        }
        Dictionary<string, int[]> outliers;
        using (BertModel uncalibrated = BertModel.FromGguf(image, name))
        {
            outliers = OutlierCalibration.Find(uncalibrated);
        }
        foreach ((string tensor, int[] columns) in outliers.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            writer.Add(BertGguf.ActivationOutliersKey(tensor), GgufValue.Of(columns));
        }
        return Image(writer);
    }

    private static byte[] Image(GgufWriter writer)
    {
        using var stream = new MemoryStream();
        writer.WriteTo(stream);
        return stream.ToArray();
    }

    public static GgufWriter Convert(OnnxModel onnx, string[] vocabulary, string modelName, Pooling pooling, TensorTypes types, Action<string, int, int>? progress = null)
    {
        OnnxTensor wordEmbeddings = Initializer(onnx, "embeddings.word_embeddings.weight");
        OnnxTensor positionEmbeddings = Initializer(onnx, "embeddings.position_embeddings.weight");
        OnnxTensor tokenTypeEmbeddings = Initializer(onnx, "embeddings.token_type_embeddings.weight");
        if (wordEmbeddings.Dimensions.Length != 2)
        {
            throw new OnnxFormatException($"embeddings.word_embeddings.weight has shape [{string.Join(", ", wordEmbeddings.Dimensions)}], expected [vocabulary, hidden]");
        }
        int hidden = (int)wordEmbeddings.Dimensions[1];
        int vocabularySize = (int)wordEmbeddings.Dimensions[0];
        if (vocabulary.Length != vocabularySize)
        {
            throw new OnnxFormatException($"the vocabulary has {vocabulary.Length} tokens but the embedding table {vocabularySize} rows");
        }

        int layers = onnx.Initializers.Keys.Select(k => LayerIndex().Match(k)).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value)).DefaultIfEmpty(-1).Max() + 1;
        if (layers == 0)
        {
            throw new OnnxFormatException("no encoder.layer.N.* initializers: this is not a BERT-family export the converter knows");
        }
        Dictionary<string, OnnxTensor> linearWeights = FindLinearWeights(onnx);
        int feedForward = (int)Initializer(onnx, "encoder.layer.0.intermediate.dense.bias").ElementCount;
        int heads = FindHeadCount(onnx, hidden);
        float epsilon = FindLayerNormEpsilon(onnx);
        var config = new BertConfig(vocabularySize, hidden, layers, heads, feedForward, (int)positionEmbeddings.Dimensions[0],
            (int)tokenTypeEmbeddings.Dimensions[0], epsilon, pooling);

        var writer = new GgufWriter();
        WriteMetadata(writer, config, modelName, vocabulary, types);

        int total = 5 + layers * (LinearLayers.Length * 2 + LayerNorms.Length * 2);
        int done = 0;
        void Add(string name, QuantType type, long rows, long columns, float[] values)
        {
            progress?.Invoke(name, ++done, total);
            writer.AddTensor(name, type, rows == 1 ? [columns] : [columns, rows], Encode(type, values, name));
        }

        Add(BertGguf.TokenEmbeddings, types.TypeOf(BertGguf.TokenEmbeddings, types.TokenEmbeddings), vocabularySize, hidden, wordEmbeddings.ToSingles());
        Add(BertGguf.PositionEmbeddings, QuantType.F32, config.ContextLength, hidden, positionEmbeddings.ToSingles());
        Add(BertGguf.TokenTypeEmbeddings, QuantType.F32, config.TokenTypeCount, hidden, tokenTypeEmbeddings.ToSingles());
        Add(BertGguf.EmbeddingNormWeight, QuantType.F32, 1, hidden, Initializer(onnx, "embeddings.LayerNorm.weight").ToSingles());
        Add(BertGguf.EmbeddingNormBias, QuantType.F32, 1, hidden, Initializer(onnx, "embeddings.LayerNorm.bias").ToSingles());

        for (int layer = 0; layer < layers; layer++)
        {
            foreach ((string onnxName, string part) in LinearLayers)
            {
                string prefix = $"encoder.layer.{layer}.{onnxName}";
                OnnxTensor weight = linearWeights.TryGetValue(prefix, out OnnxTensor? w) ? w
                    : throw new OnnxFormatException($"no MatMul weight feeds {prefix}.bias");
                int inputs = (int)weight.Dimensions[0], outputs = (int)weight.Dimensions[1];
                string name = BertGguf.Block(layer, part + ".weight");
                Add(name, types.TypeOf(name, types.Linear), outputs, inputs, Transpose(weight.ToSingles(), inputs, outputs));
                Add(BertGguf.Block(layer, part + ".bias"), QuantType.F32, 1, outputs, Initializer(onnx, prefix + ".bias").ToSingles());
            }
            foreach ((string onnxName, string part) in LayerNorms)
            {
                string prefix = $"encoder.layer.{layer}.{onnxName}";
                Add(BertGguf.Block(layer, part + ".weight"), QuantType.F32, 1, hidden, Initializer(onnx, prefix + ".weight").ToSingles());
                Add(BertGguf.Block(layer, part + ".bias"), QuantType.F32, 1, hidden, Initializer(onnx, prefix + ".bias").ToSingles());
            }
        }
        return writer;
    }

    private static void WriteMetadata(GgufWriter writer, BertConfig config, string modelName, string[] vocabulary, TensorTypes types)
    {
        writer.Add(BertGguf.ArchitectureKey, GgufValue.Of(BertGguf.Architecture))
            .Add(BertGguf.NameKey, GgufValue.Of(modelName))
            .Add(BertGguf.FileTypeKey, GgufValue.Of(types.FileType))
            .Add(BertGguf.ContextLengthKey, GgufValue.Of((uint)config.ContextLength))
            .Add(BertGguf.EmbeddingLengthKey, GgufValue.Of((uint)config.HiddenSize))
            .Add(BertGguf.FeedForwardLengthKey, GgufValue.Of((uint)config.FeedForwardSize))
            .Add(BertGguf.BlockCountKey, GgufValue.Of((uint)config.LayerCount))
            .Add(BertGguf.HeadCountKey, GgufValue.Of((uint)config.HeadCount))
            .Add(BertGguf.LayerNormEpsilonKey, GgufValue.Of(config.LayerNormEpsilon))
            .Add(BertGguf.CausalKey, GgufValue.Of(false))
            .Add(BertGguf.PoolingTypeKey, GgufValue.Of((uint)config.Pooling));

        bool[] control = vocabulary.Select(IsControlToken).ToArray();
        writer.Add(BertGguf.TokenizerModelKey, GgufValue.Of("bert"))
            .Add(BertGguf.TokensKey, GgufValue.Of(vocabulary.Select((t, i) => BertGguf.ToGgufToken(t, control[i])).ToArray()))
            .Add(BertGguf.TokenTypesKey, GgufValue.Of(control.Select(c => c ? BertGguf.TokenTypeControl : BertGguf.TokenTypeNormal).ToArray()))
            .Add(BertGguf.TokenTypeCountKey, GgufValue.Of((uint)config.TokenTypeCount));
        foreach ((string key, string token) in new[]
        {
            (BertGguf.UnknownTokenKey, "[UNK]"), (BertGguf.SeparatorTokenKey, "[SEP]"), (BertGguf.PaddingTokenKey, "[PAD]"),
            (BertGguf.ClsTokenKey, "[CLS]"), (BertGguf.MaskTokenKey, "[MASK]"),
        })
        {
            int id = Array.IndexOf(vocabulary, token);
            if (id < 0)
            {
                throw new OnnxFormatException($"the vocabulary has no {token} token");
            }
            writer.Add(key, GgufValue.Of((uint)id));
        }
    }

    /// <summary>Special tokens ([CLS], [SEP], [PAD], [UNK], [MASK], [unusedN]) keep their spelling in GGUF.</summary>
    public static bool IsControlToken(string token) => token.Length > 2 && token[0] == '[' && token[^1] == ']';

    private static Dictionary<string, OnnxTensor> FindLinearWeights(OnnxModel onnx)
    {
        var producers = new Dictionary<string, OnnxNode>(StringComparer.Ordinal);
        foreach (OnnxNode node in onnx.Nodes)
        {
            foreach (string output in node.Outputs)
            {
                producers[output] = node;
            }
        }
        var weights = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        foreach (OnnxNode add in onnx.Nodes.Where(n => n.OpType == "Add" && n.Inputs.Length == 2))
        {
            string? bias = add.Inputs.FirstOrDefault(i => i.EndsWith(".bias", StringComparison.Ordinal) && onnx.Initializers.ContainsKey(i));
            string? other = add.Inputs.FirstOrDefault(i => i != bias);
            if (bias is null || other is null || !producers.TryGetValue(other, out OnnxNode? matMul) || matMul.OpType != "MatMul")
            {
                continue;
            }
            OnnxTensor? weight = matMul.Inputs.Select(i => onnx.Initializers.GetValueOrDefault(i)).FirstOrDefault(t => t is { Dimensions.Length: 2 });
            if (weight is not null)
            {
                weights[bias[..^".bias".Length]] = weight;
            }
        }
        return weights;
    }

    /// <summary>
    /// Heads are not stored as such: the export reshapes Q/K/V to [batch, sequence, heads, head size] with a
    /// shape built by a Concat whose last two inputs are constants. Read them from the first query projection.
    /// </summary>
    private static int FindHeadCount(OnnxModel onnx, int hidden)
    {
        OnnxNode? queryAdd = onnx.Nodes.FirstOrDefault(n => n.OpType == "Add" && n.Inputs.Contains("encoder.layer.0.attention.self.query.bias"));
        OnnxNode? reshape = queryAdd is null ? null : onnx.Nodes.FirstOrDefault(n => n.OpType == "Reshape" && n.Inputs.Length == 2 && n.Inputs[0] == queryAdd.Outputs[0]);
        if (reshape is not null)
        {
            long[]? shape = onnx.ConstantFor(reshape.Inputs[1])?.ToInt64s();
            if (shape is null)
            {
                OnnxNode? concat = onnx.Nodes.FirstOrDefault(n => n.OpType == "Concat" && n.Outputs.Contains(reshape.Inputs[1]));
                shape = concat?.Inputs.Select(i => onnx.ConstantFor(i)?.ToInt64s() is [long v] ? v : -1).ToArray();
            }
            if (shape is { Length: 4 } && shape[2] > 0 && shape[3] > 0 && shape[2] * shape[3] == hidden)
            {
                return (int)shape[2];
            }
        }
        throw new OnnxFormatException("cannot tell the attention head count from the graph (no [batch, seq, heads, head size] reshape of the first query projection)");
    }

    /// <summary>LayerNorm in these exports is ReduceMean, Sub, Pow, ReduceMean, Add(epsilon), Sqrt, Div: epsilon is the Add's constant.</summary>
    private static float FindLayerNormEpsilon(OnnxModel onnx)
    {
        var producers = onnx.Nodes.SelectMany(n => n.Outputs.Select(o => (o, n))).ToDictionary(p => p.o, p => p.n, StringComparer.Ordinal);
        foreach (OnnxNode add in onnx.Nodes.Where(n => n.OpType == "Add" && n.Inputs.Length == 2))
        {
            if (producers.TryGetValue(add.Inputs[0], out OnnxNode? mean) && mean.OpType == "ReduceMean"
                && producers.TryGetValue(mean.Inputs[0], out OnnxNode? pow) && pow.OpType == "Pow"
                && onnx.ConstantFor(add.Inputs[1]) is { DataType: OnnxTensor.Float } epsilon)
            {
                return epsilon.ToSingles()[0];
            }
        }
        throw new OnnxFormatException("cannot find the LayerNorm epsilon in the graph (ReduceMean, Pow, ReduceMean, Add)");
    }

    private static OnnxTensor Initializer(OnnxModel onnx, string name) =>
        onnx.Initializers.TryGetValue(name, out OnnxTensor? tensor) ? tensor : throw new OnnxFormatException($"initializer '{name}' is missing");

    private static float[] Transpose(float[] values, int rows, int columns)
    {
        var result = new float[values.Length];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < columns; c++)
            {
                result[c * rows + r] = values[r * columns + c];
            }
        }
        return result;
    }

    private static byte[] Encode(QuantType type, float[] values, string name)
    {
        QuantTypeTraits traits = QuantTypeTraits.Of(type);
        if (values.Any(v => !float.IsFinite(v)))
        {
            throw new OnnxFormatException($"tensor '{name}' holds a NaN or infinity");
        }
        var bytes = new byte[traits.RowBytes(values.Length)];
        ReferenceQuantizer.Quantize(type, values, bytes);
        return bytes;
    }

    [GeneratedRegex(@"^encoder\.layer\.(\d+)\.")]
    private static partial Regex LayerIndex();
}
