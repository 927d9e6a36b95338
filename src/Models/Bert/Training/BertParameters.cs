namespace EdgeSlm.Models.Bert.Training;

/// <summary>A float linear layer's parameters (or their gradients): y = x·Wᵀ + b.</summary>
public sealed class LinearParameters(int rows, int columns)
{
    public int Rows { get; } = rows;
    public int Columns { get; } = columns;
    public float[] Weight { get; } = new float[rows * columns];   // (rows = outputs, columns = inputs)
    public float[] Bias { get; } = new float[rows];               // (rows)
}

/// <summary>One encoder layer's float parameters (or their gradients).</summary>
public sealed class LayerParameters(BertConfig config)
{
    public LinearParameters Query { get; } = new(config.HiddenSize, config.HiddenSize);
    public LinearParameters Key { get; } = new(config.HiddenSize, config.HiddenSize);
    public LinearParameters Value { get; } = new(config.HiddenSize, config.HiddenSize);
    public LinearParameters AttentionOutput { get; } = new(config.HiddenSize, config.HiddenSize);
    public float[] AttentionNormWeight { get; } = new float[config.HiddenSize];   // (hidden)
    public float[] AttentionNormBias { get; } = new float[config.HiddenSize];     // (hidden)
    public LinearParameters FeedForwardUp { get; } = new(config.FeedForwardSize, config.HiddenSize);
    public LinearParameters FeedForwardDown { get; } = new(config.HiddenSize, config.FeedForwardSize);
    public float[] OutputNormWeight { get; } = new float[config.HiddenSize];      // (hidden)
    public float[] OutputNormBias { get; } = new float[config.HiddenSize];        // (hidden)
}

/// <summary>One tensor of <see cref="BertParameters"/> under its GGUF name, with its (rows, columns) shape.</summary>
public readonly record struct NamedTensor(string Name, float[] Values, int Rows, int Columns);

/// <summary>
/// Every weight of a BERT encoder in float, writable: what fine-tuning changes, and (with the same shape) its gradients
/// and the optimiser's moments. Linear weights are (outputs, inputs) as GGUF stores them. <see cref="Tensors"/> lists
/// them under their GGUF names in the order a converted file holds them, which is how the converter writes them and
/// how the optimiser walks them.
/// </summary>
public sealed class BertParameters
{
    public BertParameters(BertConfig config)
    {
        Config = config;
        TokenEmbeddings = new float[config.VocabularySize * config.HiddenSize];
        PositionEmbeddings = new float[config.ContextLength * config.HiddenSize];
        TokenTypeEmbeddings = new float[config.TokenTypeCount * config.HiddenSize];
        EmbeddingNormWeight = new float[config.HiddenSize];
        EmbeddingNormBias = new float[config.HiddenSize];
        Layers = Enumerable.Range(0, config.LayerCount).Select(_ => new LayerParameters(config)).ToArray();
    }

    public BertConfig Config { get; }
    public float[] TokenEmbeddings { get; }       // (vocabulary, hidden)
    public float[] PositionEmbeddings { get; }    // (context, hidden)
    public float[] TokenTypeEmbeddings { get; }   // (token types, hidden)
    public float[] EmbeddingNormWeight { get; }   // (hidden)
    public float[] EmbeddingNormBias { get; }     // (hidden)
    public LayerParameters[] Layers { get; }

    /// <summary>The tensors under their GGUF names, in file order; the arrays are this object's own (writes go through).</summary>
    public IEnumerable<NamedTensor> Tensors
    {
        get
        {
            int hidden = Config.HiddenSize;
            yield return new(BertGguf.TokenEmbeddings, TokenEmbeddings, Config.VocabularySize, hidden);
            yield return new(BertGguf.PositionEmbeddings, PositionEmbeddings, Config.ContextLength, hidden);
            yield return new(BertGguf.TokenTypeEmbeddings, TokenTypeEmbeddings, Config.TokenTypeCount, hidden);
            yield return new(BertGguf.EmbeddingNormWeight, EmbeddingNormWeight, 1, hidden);
            yield return new(BertGguf.EmbeddingNormBias, EmbeddingNormBias, 1, hidden);
            for (int l = 0; l < Layers.Length; l++)
            {
                LayerParameters layer = Layers[l];
                LinearParameters[] linears = [layer.Query, layer.Key, layer.Value, layer.AttentionOutput, layer.FeedForwardUp, layer.FeedForwardDown];
                for (int i = 0; i < linears.Length; i++)
                {
                    yield return new(BertGguf.Block(l, BertGguf.LinearParts[i] + ".weight"), linears[i].Weight, linears[i].Rows, linears[i].Columns);
                    yield return new(BertGguf.Block(l, BertGguf.LinearParts[i] + ".bias"), linears[i].Bias, 1, linears[i].Rows);
                }
                yield return new(BertGguf.Block(l, BertGguf.NormParts[0] + ".weight"), layer.AttentionNormWeight, 1, hidden);
                yield return new(BertGguf.Block(l, BertGguf.NormParts[0] + ".bias"), layer.AttentionNormBias, 1, hidden);
                yield return new(BertGguf.Block(l, BertGguf.NormParts[1] + ".weight"), layer.OutputNormWeight, 1, hidden);
                yield return new(BertGguf.Block(l, BertGguf.NormParts[1] + ".bias"), layer.OutputNormBias, 1, hidden);
            }
        }
    }

    /// <summary>A copy with the same values.</summary>
    public BertParameters Clone()
    {
        var copy = new BertParameters(Config);
        foreach ((NamedTensor source, NamedTensor target) in Tensors.Zip(copy.Tensors))
        {
            source.Values.CopyTo(target.Values, 0);
        }
        return copy;
    }

    /// <summary>Sets every value to 0 (gradients between batches), except the token embeddings when <paramref name="tokenRows"/> lists the only rows to clear.</summary>
    public void Clear(IReadOnlyCollection<int>? tokenRows = null)
    {
        foreach (NamedTensor tensor in Tensors)
        {
            if (tokenRows is not null && ReferenceEquals(tensor.Values, TokenEmbeddings))
            {
                foreach (int row in tokenRows) Array.Clear(TokenEmbeddings, row * Config.HiddenSize, Config.HiddenSize);
                continue;
            }
            Array.Clear(tensor.Values);
        }
    }

    /// <summary>The weights of a loaded GGUF model as floats (quantized tensors dequantized: tuning from them starts from their rounding).</summary>
    public static BertParameters FromModel(BertModel model)
    {
        var parameters = new BertParameters(model.Config);
        int hidden = model.Config.HiddenSize;
        for (int id = 0; id < model.Config.VocabularySize; id++)
        {
            model.TokenEmbedding(id, parameters.TokenEmbeddings.AsSpan(id * hidden, hidden));
        }
        model.PositionEmbeddings.CopyTo(parameters.PositionEmbeddings, 0);
        model.TokenTypeEmbeddings.CopyTo(parameters.TokenTypeEmbeddings, 0);
        model.EmbeddingNormWeight.CopyTo(parameters.EmbeddingNormWeight, 0);
        model.EmbeddingNormBias.CopyTo(parameters.EmbeddingNormBias, 0);
        for (int l = 0; l < model.Config.LayerCount; l++)
        {
            LayerWeights source = model.Layers[l];
            LayerParameters target = parameters.Layers[l];
            foreach ((LinearWeights from, LinearParameters to) in new[] { (source.Query, target.Query), (source.Key, target.Key), (source.Value, target.Value),
                (source.AttentionOutput, target.AttentionOutput), (source.FeedForwardUp, target.FeedForwardUp), (source.FeedForwardDown, target.FeedForwardDown) })
            {
                from.Dequantize().CopyTo(to.Weight, 0);
                from.Bias.CopyTo(to.Bias, 0);
            }
            source.AttentionNormWeight.CopyTo(target.AttentionNormWeight, 0);
            source.AttentionNormBias.CopyTo(target.AttentionNormBias, 0);
            source.OutputNormWeight.CopyTo(target.OutputNormWeight, 0);
            source.OutputNormBias.CopyTo(target.OutputNormBias, 0);
        }
        return parameters;
    }

    /// <summary>Random parameters for tests on tiny shapes: weights ~ U(−scale, scale), norm gains near 1.</summary>
    public static BertParameters Random(BertConfig config, int seed, float scale = 0.5f)
    {
        var random = new Random(seed);
        var parameters = new BertParameters(config);
        foreach (NamedTensor tensor in parameters.Tensors)
        {
            bool gain = tensor.Name.EndsWith("norm.weight", StringComparison.Ordinal);
            for (int i = 0; i < tensor.Values.Length; i++)
            {
                float u = (float)(random.NextDouble() * 2 - 1) * scale;
                tensor.Values[i] = gain ? 1 + u * 0.2f : u;
            }
        }
        return parameters;
    }
}
