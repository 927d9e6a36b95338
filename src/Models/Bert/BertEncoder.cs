using System.Diagnostics;
using System.Numerics.Tensors;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using System.Runtime.Intrinsics;
using EdgeSlm.Kernels.Activations;
using EdgeSlm.Kernels.Attention;
using EdgeSlm.Kernels.Dispatch;
using EdgeSlm.Kernels.Float;
using EdgeSlm.Kernels.MatMul;

namespace EdgeSlm.Models.Bert;

/// <summary>
/// The fast forward pass: every linear layer on the int8 kernels (all tokens of all sentences in a batch go
/// through one GEMM, so each weight block loaded serves many tokens), float work on TensorPrimitives.
/// Sentences are packed one after another without padding; attention runs within each sentence, which is
/// exactly what an attention mask over padded batches computes. Buffers are made once for the largest batch
/// seen: after that, encoding allocates nothing. Not thread-safe: one encoder per inference thread.
/// </summary>
public sealed partial class BertEncoder : IDisposable
{
    private readonly BertModel _model;
    private readonly BertConfig _config;
    private readonly QuantMatMul _matMul;
    private readonly float _attentionScale;

    private readonly BertRunState _state;
    private readonly FloatPath _floatPath; // the float ops' tier, the one that goes with the int8 kernels' path

    public BertEncoder(BertModel model, int threads = 1, KernelPath? path = null)
    {
        _model = model;
        _config = model.Config;
        _matMul = new QuantMatMul(threads, path);
        _floatPath = FloatPaths.For(_matMul.Path);
        _attentionScale = 1f / MathF.Sqrt(_config.HeadSize);
        _state = new BertRunState(_config);
    }

    public BertConfig Config => _config;
    public KernelPath Path => _matMul.Path;
    public int Threads => _matMul.Threads;

    /// <summary>Threads the matrix products use now, 1 to <see cref="Threads"/>; settable from any thread.</summary>
    public int ActiveThreads
    {
        get => _matMul.ActiveThreads;
        set => _matMul.ActiveThreads = value;
    }

    /// <summary>
    /// Threads per pass by its token count (at most <see cref="ActiveThreads"/>); by default all of them. Set by
    /// the owning thread, between passes.
    /// </summary>
    public EncoderThreadPlan ThreadPlan
    {
        get => _threadPlan ??= EncoderThreadPlan.Fixed(Threads);
        set => _threadPlan = value ?? throw new ArgumentNullException(nameof(value));
    }

    private EncoderThreadPlan? _threadPlan;

    /// <summary>Threads the products of the last pass were split over (its plan's count, capped by <see cref="ActiveThreads"/>).</summary>
    public int ThreadsOfLastPass { get; private set; }

    /// <summary>
    /// Embeds a batch: <paramref name="tokens"/> holds each sentence's ids ([CLS] ... [SEP]) one after another,
    /// <paramref name="lengths"/> their lengths; <paramref name="embeddings"/> receives one pooled, L2-normalised
    /// vector of <see cref="BertConfig.HiddenSize"/> floats per sentence.
    /// </summary>
    public void Encode(ReadOnlySpan<int> tokens, ReadOnlySpan<int> lengths, Span<float> embeddings) =>
        Encode(tokens, lengths, embeddings, [], []);

    /// <summary>
    /// As <see cref="Encode(ReadOnlySpan{int}, ReadOnlySpan{int}, Span{float})"/>, and also pools the hidden states
    /// after each of <paramref name="poolAfterLayers"/> layers (1 to the layer count, ascending), by their mean
    /// whatever the model's pooling: <paramref name="layerPools"/> receives, per sentence, one mean-pooled,
    /// L2-normalised vector per listed layer ((sentences, layers, hidden)). Earlier layers keep more of the words
    /// than the last (intent features); a [CLS] token is trained to sum the sentence up only at the last layer (at
    /// layer 3 of arctic-embed-xs one dimension holds 0.995 of its norm in every sentence).
    /// </summary>
    public void Encode(ReadOnlySpan<int> tokens, ReadOnlySpan<int> lengths, Span<float> embeddings, ReadOnlySpan<int> poolAfterLayers, Span<float> layerPools) =>
        Encode(tokens, lengths, embeddings, poolAfterLayers, layerPools, []);

    /// <summary>
    /// As <see cref="Encode(ReadOnlySpan{int}, ReadOnlySpan{int}, Span{float}, ReadOnlySpan{int}, Span{float})"/>, and
    /// when <paramref name="tokenStates"/> is not empty it receives the last layer's hidden state of every token
    /// ((tokens, hidden), in the order of <paramref name="tokens"/>), the states the pooling reads: a copy, no
    /// further encoder work (sequence taggers read them).
    /// </summary>
    public void Encode(ReadOnlySpan<int> tokens, ReadOnlySpan<int> lengths, Span<float> embeddings, ReadOnlySpan<int> poolAfterLayers, Span<float> layerPools, Span<float> tokenStates)
    {
        int total = CheckBatch(tokens, lengths, embeddings, poolAfterLayers, layerPools);
        if (tokenStates.Length != 0 && tokenStates.Length != total * _config.HiddenSize)
        {
            throw new ArgumentException($"{total} tokens need {total * _config.HiddenSize} floats of token states, not {tokenStates.Length}", nameof(tokenStates));
        }
        _state.EnsureCapacity(total);
        _matMul.PassThreads = _threadPlan?.ThreadsFor(total) ?? Threads;
        ThreadsOfLastPass = Math.Min(_matMul.PassThreads, _matMul.ActiveThreads);
        StartStages();

        Embed(tokens, lengths);
        EndStage(Stage.Embeddings);
        IReadOnlyList<LayerWeights> layers = _model.Layers;
        int nextPool = 0;
        for (int i = 0; i < layers.Count; i++) // index, not foreach: an interface enumerator would allocate
        {
            EncoderLayer(layers[i], lengths, total);
            if (nextPool < poolAfterLayers.Length && poolAfterLayers[nextPool] == i + 1)
            {
                PoolInto(lengths, layerPools, nextPool, poolAfterLayers.Length, Pooling.Mean);
                nextPool++;
            }
        }
        if (tokenStates.Length != 0)
        {
            _state.Hidden.AsSpan(0, tokenStates.Length).CopyTo(tokenStates);
        }
        Pool(lengths, embeddings);
        EndStage(Stage.Pooling);
    }

    /// <summary>Embeddings: word + position + token type (all type 0), then LayerNorm.</summary>
    private void Embed(ReadOnlySpan<int> tokens, ReadOnlySpan<int> lengths)
    {
        int hidden = _config.HiddenSize;
        int t = 0;
        foreach (int length in lengths)
        {
            for (int position = 0; position < length; position++, t++)
            {
                Span<float> row = _state.Hidden.AsSpan(t * hidden, hidden);
                _model.TokenEmbedding(tokens[t], row);
                TensorPrimitives.Add(row, _model.PositionEmbeddings.AsSpan(position * hidden, hidden), row);
                TensorPrimitives.Add(row, _model.TokenTypeEmbeddings.AsSpan(0, hidden), row);
                LayerNorm(row, _model.EmbeddingNormWeight, _model.EmbeddingNormBias);
            }
        }
    }

    private void EncoderLayer(LayerWeights layer, ReadOnlySpan<int> lengths, int total)
    {
        int hidden = _config.HiddenSize;
        Span<float> x = _state.Hidden.AsSpan(0, total * hidden);

        // Q, K, V projections of every token; one input, quantized once where the outlier columns agree.
        Linear(layer.Query, x, total, _state.Query, Stage.QueryKeyValue);
        Linear(layer.Key, x, total, _state.Key, Stage.QueryKeyValue, inputQuantized: SharesQuantizedInput(layer.Key, layer.Query));
        Linear(layer.Value, x, total, _state.Value, Stage.QueryKeyValue, inputQuantized: SharesQuantizedInput(layer.Value, layer.Key));

        // Scaled dot-product attention, per sentence and head.
        Attention(lengths);

        // Output projection, residual, LayerNorm.
        Linear(layer.AttentionOutput, _state.Context.AsSpan(0, total * hidden), total, _state.Projected, Stage.AttentionOutput);
        AddAndNorm(x, _state.Projected, total, layer.AttentionNormWeight, layer.AttentionNormBias);

        // Feed-forward: up, GELU, down, residual, LayerNorm.
        Span<float> feedForward = _state.FeedForward.AsSpan(0, total * _config.FeedForwardSize);
        Linear(layer.FeedForwardUp, x, total, feedForward, Stage.FeedForwardUp);
        Gelu.Apply(feedForward, _floatPath);
        EndStage(Stage.Gelu);
        Linear(layer.FeedForwardDown, feedForward, total, _state.Projected, Stage.FeedForwardDown);
        AddAndNorm(x, _state.Projected, total, layer.OutputNormWeight, layer.OutputNormBias);
    }

    /// <summary>Each sentence's attention within itself, all heads in one kernel call (src/Kernels/Attention).</summary>
    private void Attention(ReadOnlySpan<int> lengths)
    {
        int hidden = _config.HiddenSize;
        int start = 0;
        foreach (int length in lengths)
        {
            ScaledDotProductAttention.Compute(
                _state.Query.AsSpan(start * hidden, length * hidden), _state.Key.AsSpan(start * hidden, length * hidden),
                _state.Value.AsSpan(start * hidden, length * hidden), _state.Context.AsSpan(start * hidden, length * hidden),
                length, _config.HeadCount, _config.HeadSize, _attentionScale, _state.Scores, _floatPath);
            start += length;
        }
        EndStage(Stage.Attention);
    }

    /// <summary>
    /// output = input·Wᵀ + b. A few input columns carry outliers (LayerNorm gains, single GELU units) many times
    /// larger than the rest; in int8 they would take the whole scale of their 32-value block. Those columns
    /// (chosen at conversion, <see cref="LinearWeights.OutlierColumns"/>) are zeroed for the int8 product and
    /// added back in float: under 1% more multiply-adds for int8 error close to float activations.
    /// <paramref name="inputQuantized"/>: the input is already in <see cref="BertRunState.Quantized"/> (the previous call had
    /// the same input and outlier columns), as for a layer's key and value after its query.
    /// </summary>
    private void Linear(LinearWeights weights, Span<float> input, int tokens, Span<float> output, Stage stage, bool inputQuantized = false)
    {
        Span<float> y = output[..(tokens * weights.Rows)];
        Span<float> x = input[..(tokens * weights.Columns)];
        if (weights.Quantized is not null)
        {
            if (!inputQuantized)
            {
                QuantizeInput(weights, x, tokens);
                EndStage(Stage.Quantize);
            }
            BiasAndOutliers.Prefetch(weights.Bias, weights.OutlierWeights);
            _matMul.Multiply(weights.Quantized, _state.Quantized, y);
            EndStage(stage);
        }
        else
        {
            float[] w = weights.Values!;
            for (int t = 0; t < tokens; t++)
            {
                ReadOnlySpan<float> xt = x.Slice(t * weights.Columns, weights.Columns);
                for (int r = 0; r < weights.Rows; r++)
                {
                    y[t * weights.Rows + r] = TensorPrimitives.Dot(xt, w.AsSpan(r * weights.Columns, weights.Columns));
                }
            }
            EndStage(stage);
        }
        _observer?.Invoke(weights, x, tokens);
        BiasAndOutliers.Add(x, tokens, weights.Columns, weights.OutlierColumns, weights.Bias, weights.OutlierWeights, y, _floatPath);
        EndStage(Stage.BiasAndOutliers);
    }

    /// <summary>Whether <paramref name="next"/> can reuse the quantized input of <paramref name="previous"/> (same input assumed).</summary>
    private static bool SharesQuantizedInput(LinearWeights next, LinearWeights previous) =>
        next.Quantized is not null && previous.Quantized is not null && next.OutlierColumns.AsSpan().SequenceEqual(previous.OutlierColumns);

    /// <summary>
    /// Quantizes <paramref name="x"/> with its outlier columns zeroed: zeroes them in place and puts them back
    /// after, rather than copying the whole input.
    /// </summary>
    private void QuantizeInput(LinearWeights weights, Span<float> x, int tokens)
    {
        int[] outliers = weights.OutlierColumns;
        Span<float> saved = _state.OutlierInputs.AsSpan(0, tokens * outliers.Length);
        for (int t = 0; t < tokens; t++)
        {
            for (int i = 0; i < outliers.Length; i++)
            {
                saved[t * outliers.Length + i] = x[t * weights.Columns + outliers[i]];
                x[t * weights.Columns + outliers[i]] = 0f;
            }
        }
        _matMul.Quantize(x, tokens, weights.Columns, _state.Quantized);
        for (int t = 0; t < tokens; t++)
        {
            for (int i = 0; i < outliers.Length; i++)
            {
                x[t * weights.Columns + outliers[i]] = saved[t * outliers.Length + i];
            }
        }
    }

    private void AddAndNorm(Span<float> x, ReadOnlySpan<float> residual, int tokens, float[] weight, float[] bias)
    {
        int hidden = _config.HiddenSize;
        TensorPrimitives.Add(x, residual[..(tokens * hidden)], x);
        for (int t = 0; t < tokens; t++)
        {
            LayerNorm(x.Slice(t * hidden, hidden), weight, bias);
        }
        EndStage(Stage.LayerNorm);
    }

    private void LayerNorm(Span<float> row, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias)
    {
        float mean = TensorPrimitives.Sum(row) / row.Length;
        TensorPrimitives.Subtract(row, mean, row);
        float variance = TensorPrimitives.SumOfSquares(row) / row.Length;
        TensorPrimitives.Multiply(row, 1f / MathF.Sqrt(variance + _config.LayerNormEpsilon), row);
        TensorPrimitives.FusedMultiplyAdd(row, weight, bias, row);
    }

    private void Pool(ReadOnlySpan<int> lengths, Span<float> embeddings) => PoolInto(lengths, embeddings, 0, 1, _config.Pooling);

    /// <summary>Pools the current hidden states into slot <paramref name="slot"/> of <paramref name="slots"/> per sentence.</summary>
    private void PoolInto(ReadOnlySpan<int> lengths, Span<float> embeddings, int slot, int slots, Pooling pooling)
    {
        int hidden = _config.HiddenSize;
        int start = 0;
        for (int s = 0; s < lengths.Length; s++)
        {
            Span<float> embedding = embeddings.Slice((s * slots + slot) * hidden, hidden);
            if (pooling == Pooling.Cls)
            {
                _state.Hidden.AsSpan(start * hidden, hidden).CopyTo(embedding);
            }
            else
            {
                embedding.Clear();
                for (int t = start; t < start + lengths[s]; t++)
                {
                    TensorPrimitives.Add(embedding, _state.Hidden.AsSpan(t * hidden, hidden), embedding);
                }
                TensorPrimitives.Multiply(embedding, 1f / lengths[s], embedding);
            }
            float norm = TensorPrimitives.Norm(embedding);
            TensorPrimitives.Multiply(embedding, norm > 0 ? 1f / norm : 0f, embedding);
            start += lengths[s];
        }
    }

    /// <summary>Checks a batch at the door; the forward pass asserts nothing. Returns the total token count.</summary>
    private int CheckBatch(ReadOnlySpan<int> tokens, ReadOnlySpan<int> lengths, ReadOnlySpan<float> embeddings, ReadOnlySpan<int> poolAfterLayers, ReadOnlySpan<float> layerPools)
    {
        int hidden = _config.HiddenSize;
        for (int p = 0; p < poolAfterLayers.Length; p++)
        {
            if (poolAfterLayers[p] < 1 || poolAfterLayers[p] > _config.LayerCount || (p > 0 && poolAfterLayers[p] <= poolAfterLayers[p - 1]))
            {
                throw new ArgumentOutOfRangeException(nameof(poolAfterLayers), poolAfterLayers[p], $"layers to pool run from 1 to {_config.LayerCount}, ascending");
            }
        }
        if (layerPools.Length != lengths.Length * poolAfterLayers.Length * hidden)
        {
            throw new ArgumentException($"{lengths.Length} sentences and {poolAfterLayers.Length} layers need {lengths.Length * poolAfterLayers.Length * hidden} floats of layer pools, not {layerPools.Length}", nameof(layerPools));
        }
        int total = 0;
        foreach (int length in lengths)
        {
            if (length < 1 || length > _config.ContextLength)
            {
                throw new ArgumentOutOfRangeException(nameof(lengths), length, $"a sentence needs 1 to {_config.ContextLength} tokens");
            }
            total += length;
        }
        if (total != tokens.Length)
        {
            throw new ArgumentException($"the lengths add up to {total} tokens, but {tokens.Length} were given", nameof(tokens));
        }
        if (embeddings.Length != lengths.Length * hidden)
        {
            throw new ArgumentException($"{lengths.Length} sentences need {lengths.Length * hidden} floats of output, not {embeddings.Length}", nameof(embeddings));
        }
        foreach (int id in tokens)
        {
            if ((uint)id >= (uint)_config.VocabularySize)
            {
                throw new ArgumentOutOfRangeException(nameof(tokens), id, $"token ids run from 0 to {_config.VocabularySize - 1}");
            }
        }
        return total;
    }

    public void Dispose() => _matMul.Dispose();
}
