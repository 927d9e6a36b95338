using System.Text.RegularExpressions;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Bert.Training;
using EdgeSlm.Models.Gguf;
using EdgeSlm.Models.Onnx;

namespace EdgeSlm.Models.Conversion;

/// <summary>Which GGUF type each kind of tensor gets.</summary>
/// <param name="Linear">The weights of the 36 linear layers (attention and feed-forward).</param>
/// <param name="TokenEmbeddings">The word-embedding table, the largest tensor (30522 × 384).</param>
/// <param name="Overrides">Per-tensor exceptions, by GGUF name (e.g. the most quantization-sensitive layers in q8_0).</param>
/// <param name="Gptq">Q4_0 linear layers by GPTQ (<see cref="GptqQuantizer"/>); false: rounded to nearest, as llama.cpp's quantizer does.</param>
public sealed record TensorTypes(QuantType Linear, QuantType TokenEmbeddings, IReadOnlyDictionary<string, QuantType> Overrides, bool Gptq = true)
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

    // The default q4_0 file has every linear layer and the token embeddings in Q4_0, the linear layers by GPTQ, so
    // every product runs on the Q4_0 kernels; why that is close enough to ONNX Runtime: docs/performance.md.
    private static readonly Dictionary<string, QuantType> Q4_0Overrides = new();

    /// <summary>Plain Q4_0 everywhere, as llama.cpp's quantizer would make it (for measurements).</summary>
    public static TensorTypes PlainQ4_0 { get; } = new(QuantType.Q4_0, QuantType.Q4_0, NoOverrides, Gptq: false);

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
    /// Converts and writes <paramref name="path"/>: for quantized types calibrated (<see cref="Calibrated"/>), with
    /// GPTQ for the Q4_0 tensors and the other quantized tensors' activation-outlier columns in the metadata.
    /// </summary>
    public static void ConvertTo(string path, OnnxModel onnx, string[] vocabulary, string modelName, Pooling pooling, TensorTypes types, Action<string, int, int>? progress = null) =>
        Calibrated(ReadParameters(onnx, vocabulary, pooling), vocabulary, modelName, types, progress).WriteTo(path);

    /// <summary>
    /// Writes float weights (a fine-tuned encoder's) to <paramref name="path"/> the way <see cref="ConvertTo(string, OnnxModel, string[], string, Pooling, TensorTypes, Action{string, int, int}?)"/>
    /// writes an ONNX export's: calibrated, with GPTQ for the Q4_0 tensors.
    /// </summary>
    public static void ConvertTo(string path, BertParameters parameters, string[] vocabulary, string modelName, TensorTypes types, Action<string, int, int>? progress = null) =>
        Calibrated(parameters, vocabulary, modelName, types, progress).WriteTo(path);

    /// <summary>
    /// <see cref="ConvertTo(string, OnnxModel, string[], string, Pooling, TensorTypes, Action{string, int, int}?)"/> without touching the disk: the GGUF image as bytes. For a cache directory that is
    /// read-only or full; <paramref name="name"/> names the model in messages.
    /// </summary>
    public static byte[] ConvertInMemory(OnnxModel onnx, string[] vocabulary, string modelName, Pooling pooling, TensorTypes types, string name) =>
        Image(Calibrated(ReadParameters(onnx, vocabulary, pooling), vocabulary, modelName, types, null, name));

    /// <summary>
    /// The converted model with what calibration adds. Unquantized types need none. Otherwise the calibration
    /// sentences run through the model (<see cref="Calibration"/>) to find each layer's outlier columns; where
    /// linear layers are Q4_0 they run through a Q8_0 conversion instead, close to the float model, whose input Gram
    /// matrices then drive GPTQ (<see cref="GptqQuantizer"/>), and those layers keep no outlier columns.
    /// </summary>
    private static GgufWriter Calibrated(BertParameters parameters, string[] vocabulary, string modelName, TensorTypes types,
        Action<string, int, int>? progress, string? name = null)
    {
        if (!QuantTypeTraits.Of(types.Linear).IsQuantized)
        {
            return Convert(parameters, vocabulary, modelName, types, progress);
        }
        bool gptq = types.Gptq && (types.Linear == QuantType.Q4_0 || types.Overrides.Values.Contains(QuantType.Q4_0));
        progress?.Invoke("calibration", 0, 1);
        GgufWriter measured = Convert(parameters, vocabulary, modelName, gptq ? TensorTypes.For(QuantType.Q8_0) : types);
        Calibration.Statistics statistics;
        using (BertModel model = BertModel.FromGguf(Image(measured), name ?? modelName))
        {
            statistics = Calibration.Measure(model, gram: gptq);
        }
        GgufWriter writer = gptq ? Convert(parameters, vocabulary, modelName, types, progress, statistics.Gram) : measured;
        // GPTQ fits a Q4_0 layer to its inputs, outliers included: keeping its outlier columns in float as well
        // gained nothing (mean cosine 0.98805 against 0.98792 without) and moved us away from llama.cpp, which
        // quantizes every activation (its agreement with us on the worst sentence 0.9989 against 0.9997). So only
        // the other quantized layers, Q8_0 above all, list their outlier columns.
        foreach ((string tensor, int[] columns) in statistics.Outliers.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            if (!(gptq && types.TypeOf(tensor, types.Linear) == QuantType.Q4_0))
            {
                writer.Add(BertGguf.ActivationOutliersKey(tensor), GgufValue.Of(columns));
            }
        }
        return writer;
    }

    private static byte[] Image(GgufWriter writer)
    {
        using var stream = new MemoryStream();
        writer.WriteTo(stream);
        return stream.ToArray();
    }

    /// <summary>The float weights of an ONNX export (linear weights transposed to GGUF's (outputs, inputs)), for fine-tuning or for <see cref="Convert(BertParameters, string[], string, TensorTypes, Action{string, int, int}?, IReadOnlyDictionary{string, float[]}?)"/>.</summary>
    public static BertParameters ReadParameters(OnnxModel onnx, string[] vocabulary, Pooling pooling)
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

        var parameters = new BertParameters(config);
        void Copy(float[] values, float[] target, string name)
        {
            if (values.Length != target.Length)
            {
                throw new OnnxFormatException($"{name} has {values.Length} values, expected {target.Length}");
            }
            values.CopyTo(target, 0);
        }
        Copy(wordEmbeddings.ToSingles(), parameters.TokenEmbeddings, "embeddings.word_embeddings.weight");
        Copy(positionEmbeddings.ToSingles(), parameters.PositionEmbeddings, "embeddings.position_embeddings.weight");
        Copy(tokenTypeEmbeddings.ToSingles(), parameters.TokenTypeEmbeddings, "embeddings.token_type_embeddings.weight");
        Copy(Initializer(onnx, "embeddings.LayerNorm.weight").ToSingles(), parameters.EmbeddingNormWeight, "embeddings.LayerNorm.weight");
        Copy(Initializer(onnx, "embeddings.LayerNorm.bias").ToSingles(), parameters.EmbeddingNormBias, "embeddings.LayerNorm.bias");
        for (int layer = 0; layer < layers; layer++)
        {
            LayerParameters target = parameters.Layers[layer];
            LinearParameters[] linears = [target.Query, target.Key, target.Value, target.AttentionOutput, target.FeedForwardUp, target.FeedForwardDown];
            for (int i = 0; i < LinearLayers.Length; i++)
            {
                string prefix = $"encoder.layer.{layer}.{LinearLayers[i].OnnxBias}";
                OnnxTensor weight = linearWeights.TryGetValue(prefix, out OnnxTensor? w) ? w
                    : throw new OnnxFormatException($"no MatMul weight feeds {prefix}.bias");
                int inputs = (int)weight.Dimensions[0], outputs = (int)weight.Dimensions[1];
                if (inputs != linears[i].Columns || outputs != linears[i].Rows)
                {
                    throw new OnnxFormatException($"{prefix} weight is [{inputs}, {outputs}], expected [{linears[i].Columns}, {linears[i].Rows}]");
                }
                Copy(Transpose(weight.ToSingles(), inputs, outputs), linears[i].Weight, prefix + ".weight");
                Copy(Initializer(onnx, prefix + ".bias").ToSingles(), linears[i].Bias, prefix + ".bias");
            }
            (float[] Weight, float[] Bias)[] norms = [(target.AttentionNormWeight, target.AttentionNormBias), (target.OutputNormWeight, target.OutputNormBias)];
            for (int i = 0; i < LayerNorms.Length; i++)
            {
                string prefix = $"encoder.layer.{layer}.{LayerNorms[i].Onnx}";
                Copy(Initializer(onnx, prefix + ".weight").ToSingles(), norms[i].Weight, prefix + ".weight");
                Copy(Initializer(onnx, prefix + ".bias").ToSingles(), norms[i].Bias, prefix + ".bias");
            }
        }
        return parameters;
    }

    /// <param name="gram">
    /// Per linear weight tensor, the Gram matrix of its inputs on calibration sentences: Q4_0 tensors found here are
    /// quantized by GPTQ (<see cref="GptqQuantizer"/>), all others as ggml's reference quantizer does.
    /// </param>
    public static GgufWriter Convert(OnnxModel onnx, string[] vocabulary, string modelName, Pooling pooling, TensorTypes types, Action<string, int, int>? progress = null,
        IReadOnlyDictionary<string, float[]>? gram = null) =>
        Convert(ReadParameters(onnx, vocabulary, pooling), vocabulary, modelName, types, progress, gram);

    /// <summary>A GGUF file of float weights (the ONNX export's or fine-tuned ones), each tensor in the type <paramref name="types"/> gives it.</summary>
    public static GgufWriter Convert(BertParameters parameters, string[] vocabulary, string modelName, TensorTypes types, Action<string, int, int>? progress = null,
        IReadOnlyDictionary<string, float[]>? gram = null)
    {
        BertConfig config = parameters.Config;
        if (vocabulary.Length != config.VocabularySize)
        {
            throw new OnnxFormatException($"the vocabulary has {vocabulary.Length} tokens but the embedding table {config.VocabularySize} rows");
        }
        var writer = new GgufWriter();
        WriteMetadata(writer, config, modelName, vocabulary, types);

        NamedTensor[] tensors = parameters.Tensors.ToArray();
        int done = 0;
        foreach ((string name, float[] values, int rows, int columns) in tensors)
        {
            progress?.Invoke(name, ++done, tensors.Length);
            bool linear = rows > 1 && name.StartsWith("blk.", StringComparison.Ordinal);
            QuantType type = name == BertGguf.TokenEmbeddings ? types.TypeOf(name, types.TokenEmbeddings)
                : linear ? types.TypeOf(name, types.Linear)
                : QuantType.F32;
            byte[] data = type == QuantType.Q4_0 && gram is not null && gram.TryGetValue(name, out float[]? inputGram)
                ? Gptq(name, Finite(values, name), rows, columns, inputGram)
                : Encode(type, values, name);
            writer.AddTensor(name, type, rows == 1 ? [columns] : [columns, rows], data);
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

    private static byte[] Gptq(string name, float[] values, int rows, int columns, float[] gram)
    {
        try
        {
            return GptqQuantizer.QuantizeQ4_0(values, rows, columns, gram);
        }
        catch (ArithmeticException e)
        {
            throw new OnnxFormatException($"tensor '{name}' cannot be quantized to Q4_0: {e.Message}");
        }
    }

    private static float[] Finite(float[] values, string name) =>
        values.All(float.IsFinite) ? values : throw new OnnxFormatException($"tensor '{name}' holds a NaN or infinity");

    private static byte[] Encode(QuantType type, float[] values, string name)
    {
        QuantTypeTraits traits = QuantTypeTraits.Of(type);
        Finite(values, name);
        var bytes = new byte[traits.RowBytes(values.Length)];
        ReferenceQuantizer.Quantize(type, values, bytes);
        return bytes;
    }

    [GeneratedRegex(@"^encoder\.layer\.(\d+)\.")]
    private static partial Regex LayerIndex();
}
