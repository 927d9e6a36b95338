using System.Numerics.Tensors;
using EdgeSlm.Kernels.Activations;
using EdgeSlm.Kernels.Attention;
using EdgeSlm.Kernels.Dispatch;
using EdgeSlm.Kernels.MatMul;
using EdgeSlm.Kernels.Normalization;
using EdgeSlm.Kernels.Positional;

namespace EdgeSlm.Models.Llama;

/// <summary>
/// The fast forward pass of a llama or qwen2 decoder on EdgeSlm's kernels, with its KV cache. Prompts run in
/// batches of up to <see cref="BatchSize"/> tokens, each product one GEMM over the batch; a generated token is
/// one GEMV per product. Quantized weights multiply Q8_0-quantized activations on the int8 kernels (as llama.cpp
/// does for q4_0 and q8_0); f32 and f16 weights multiply in float (<see cref="DenseMatMul"/>, activations rounded to
/// f16 for f16 weights, as ggml does). All products share one worker pool. Buffers and the cache are allocated here:
/// a forward pass allocates nothing. Not thread-safe: one decoder per conversation.
/// </summary>
public sealed class LlamaDecoder : IDisposable
{
    private readonly LlamaModel _model;
    private readonly LlamaConfig _c;
    private readonly QuantMatMul _matMul;
    private readonly DenseMatMul _dense;
    private readonly RopeTable _rope;
    private readonly FloatPath _floatPath; // the float ops' tier, the one that goes with the int8 kernels' path
    private readonly ParallelGroupedQueryAttention _attention;
    private readonly float _attentionScale;

    // RunState for a batch of up to BatchSize tokens.
    private readonly float[] _x;          // (batch, dim) the residual stream
    private readonly float[] _xb;         // (batch, dim) a block's normed input
    private readonly float[] _q;          // (batch, n_heads * head_size)
    private readonly float[] _att;        // (batch, n_heads * head_size) attention output
    private readonly float[] _proj;       // (batch, dim) a projection before the residual add
    private readonly float[] _gate;       // (batch, hidden_dim) gate, then silu(gate) * up
    private readonly float[] _up;         // (batch, hidden_dim)
    private readonly float[] _keyCache;   // (layer, context, kv_dim)
    private readonly float[] _valueCache; // (layer, context, kv_dim)
    private readonly QuantizedActivations _quantized = new(); // (batch, columns) a product's input in Q8_0, shared by q/k/v and gate/up
    private float[] _scoreLogits = [];    // (vocab_size) ScoreContinuation's running logits, made on first use

    /// <param name="context">Positions the KV cache holds (prompt and generated tokens together).</param>
    /// <param name="threads">Threads for the products (the caller's included).</param>
    /// <param name="batchSize">Prompt tokens per forward pass.</param>
    public LlamaDecoder(LlamaModel model, int context = 2048, int threads = 1, int batchSize = 64, KernelPath? path = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (context < 1 || context > 1 << 20)
        {
            throw new ArgumentOutOfRangeException(nameof(context), context, "The context holds 1 to 1048576 positions.");
        }
        if (batchSize < 1 || batchSize > 4096)
        {
            throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "A batch holds 1 to 4096 tokens.");
        }
        _model = model;
        _c = model.Config;
        Context = context;
        BatchSize = batchSize;
        _matMul = new QuantMatMul(threads, path);
        _floatPath = FloatPaths.For(_matMul.Path);
        _dense = new DenseMatMul(_matMul);
        _attention = new ParallelGroupedQueryAttention(_matMul, context);
        _rope = new RopeTable(_c.Architecture.Rope, _c.HeadSize, context, _c.RopeBase);
        _attentionScale = 1f / MathF.Sqrt(_c.HeadSize);

        int qSize = _c.HeadCount * _c.HeadSize;
        _x = new float[batchSize * _c.HiddenSize];
        _xb = new float[batchSize * _c.HiddenSize];
        _q = new float[batchSize * qSize];
        _att = new float[batchSize * qSize];
        _proj = new float[batchSize * _c.HiddenSize];
        _gate = new float[batchSize * _c.FeedForwardSize];
        _up = new float[batchSize * _c.FeedForwardSize];
        long cache = checked((long)_c.LayerCount * context * _c.KvSize);
        if (cache > Array.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(context), context, $"A KV cache of {context} positions ({cache} floats per K and V) is too large; use a shorter context.");
        }
        _keyCache = new float[cache];
        _valueCache = new float[cache];
    }

    public LlamaConfig Config => _c;
    public int Context { get; }
    public int BatchSize { get; }
    public KernelPath Path => _matMul.Path;
    public int Threads => _matMul.Threads;

    /// <summary>Positions filled in the KV cache: the next token goes to this position.</summary>
    public int Position { get; private set; }

    /// <summary>Bytes of the KV cache.</summary>
    public long CacheBytes => 2L * _keyCache.Length * sizeof(float);

    /// <summary>Empties the cache: the next token is at position 0.</summary>
    public void Reset() => Position = 0;

    /// <summary>Forgets positions from <paramref name="position"/> on (to reuse the state of a prefix).</summary>
    public void Truncate(int position)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(position);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(position, Position);
        Position = position;
    }

    /// <summary>
    /// A copy of the cache's first <see cref="Position"/> positions: a long fixed prompt is computed once, and each
    /// request restores this state (<see cref="RestoreState"/>) and pays only for its own tokens.
    /// </summary>
    public DecoderState SaveState()
    {
        int kvSize = _c.KvSize;
        int filled = Position * kvSize;
        var keys = new float[_c.LayerCount * filled];
        var values = new float[_c.LayerCount * filled];
        for (int l = 0; l < _c.LayerCount; l++)
        {
            _keyCache.AsSpan(l * Context * kvSize, filled).CopyTo(keys.AsSpan(l * filled, filled));
            _valueCache.AsSpan(l * Context * kvSize, filled).CopyTo(values.AsSpan(l * filled, filled));
        }
        return new DecoderState(_c, Position, keys, values);
    }

    /// <summary>Puts a state saved from a decoder of the same model back: the next token goes to its position.</summary>
    public void RestoreState(DecoderState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (!ReferenceEquals(state.Config, _c) && state.Config != _c)
        {
            throw new ArgumentException("The state was saved from a decoder of another model.", nameof(state));
        }
        if (state.Positions > Context)
        {
            throw new ArgumentException($"The state holds {state.Positions} positions; this decoder's context has {Context}.", nameof(state));
        }
        int kvSize = _c.KvSize;
        int filled = state.Positions * kvSize;
        for (int l = 0; l < _c.LayerCount; l++)
        {
            state.Keys.AsSpan(l * filled, filled).CopyTo(_keyCache.AsSpan(l * Context * kvSize, filled));
            state.Values.AsSpan(l * filled, filled).CopyTo(_valueCache.AsSpan(l * Context * kvSize, filled));
        }
        Position = state.Positions;
    }

    /// <summary>Appends <paramref name="tokens"/> to the cache and writes the logits of the last one ((vocab_size)).</summary>
    public void Prefill(ReadOnlySpan<int> tokens, Span<float> logits)
    {
        if (logits.Length != _c.VocabularySize)
        {
            throw new ArgumentException($"The logits of one token are {_c.VocabularySize} floats, not {logits.Length}.", nameof(logits));
        }
        Forward(tokens, logits, allLogits: false, classify: true);
    }

    /// <summary>Appends <paramref name="tokens"/> to the cache and writes every token's logits ((tokens, vocab_size)).</summary>
    public void Evaluate(ReadOnlySpan<int> tokens, Span<float> logits)
    {
        if (logits.Length != (long)tokens.Length * _c.VocabularySize)
        {
            throw new ArgumentException($"{tokens.Length} tokens have {(long)tokens.Length * _c.VocabularySize} logits, not {logits.Length}.", nameof(logits));
        }
        Forward(tokens, logits, allLogits: true, classify: true);
    }

    /// <summary>Appends one token and writes its logits ((vocab_size)).</summary>
    public void Decode(int token, Span<float> logits) => Prefill([token], logits);

    /// <summary>
    /// Appends <paramref name="tokens"/> and writes the last one's logits for the ids of <paramref name="subset"/>
    /// only ((subset.Count)): the output matrix, the largest product of these models, is read for those rows alone.
    /// </summary>
    public unsafe void Prefill(ReadOnlySpan<int> tokens, LogitSubset subset, Span<float> logits)
    {
        ArgumentNullException.ThrowIfNull(subset);
        if (!ReferenceEquals(subset.Output, _model.Weights.Output))
        {
            throw new ArgumentException("The subset was made for another model.", nameof(subset));
        }
        if (logits.Length != subset.Count)
        {
            throw new ArgumentException($"The subset has {subset.Count} ids; {logits.Length} logits were given.", nameof(logits));
        }
        Forward(tokens, default, allLogits: false, classify: false);
        int dim = _c.HiddenSize;
        int last = (tokens.Length - 1) % BatchSize;
        Span<float> row = _xb.AsSpan(0, dim);
        RmsNorm.Compute(_x.AsSpan(last * dim, dim), _model.Weights.OutputNorm, _c.RmsEpsilon, row, _floatPath);
        DecoderMatrix output = subset.Output;
        if (output.Quantized is not null)
        {
            _matMul.Quantize(row, 1, dim, _quantized);
            for (int i = 0; i < subset.Count; i++)
            {
                _matMul.Multiply(subset.Rows[i]!, _quantized, logits.Slice(i, 1));
            }
        }
        else
        {
            for (int i = 0; i < subset.Count; i++)
            {
                _dense.Multiply(output.Type, output.Data + subset.Ids[i] * output.RowBytes, 1, dim, row, 1, logits.Slice(i, 1));
            }
        }
    }

    /// <summary>The rows of the output matrix for <paramref name="ids"/>, for <see cref="Prefill(ReadOnlySpan{int}, LogitSubset, Span{float})"/>.</summary>
    public LogitSubset CreateSubset(ReadOnlySpan<int> ids) => new(_model.Weights.Output, ids);

    /// <summary>
    /// log P(continuation | everything in the cache): <paramref name="lastLogits"/> are the logits after the last
    /// token in the cache (what the previous Prefill or Decode wrote); each continuation token's log-probability goes
    /// to <paramref name="logProbabilities"/>, and all but the last token are appended to the cache. Returns the sum.
    /// </summary>
    public double ScoreContinuation(ReadOnlySpan<float> lastLogits, ReadOnlySpan<int> continuation, Span<float> logProbabilities)
    {
        if (lastLogits.Length != _c.VocabularySize || logProbabilities.Length != continuation.Length || continuation.IsEmpty)
        {
            throw new ArgumentException($"Scoring needs {_c.VocabularySize} logits and one log-probability per continuation token (got {lastLogits.Length} logits, {continuation.Length} tokens, {logProbabilities.Length} results).");
        }
        if (_scoreLogits.Length == 0)
        {
            _scoreLogits = new float[_c.VocabularySize];
        }
        lastLogits.CopyTo(_scoreLogits);
        double total = 0;
        for (int i = 0; i < continuation.Length; i++)
        {
            int id = continuation[i];
            if ((uint)id >= (uint)_c.VocabularySize)
            {
                throw new ArgumentOutOfRangeException(nameof(continuation), id, $"token ids run from 0 to {_c.VocabularySize - 1}");
            }
            // The logits are not needed after this token (the next Decode rewrites them): the normaliser may use them as scratch.
            logProbabilities[i] = (float)(_scoreLogits[id] - LogSumExp.Compute(_scoreLogits, _scoreLogits));
            total += logProbabilities[i];
            if (i + 1 < continuation.Length)
            {
                Decode(id, _scoreLogits);
            }
        }
        return total;
    }

    private void Forward(ReadOnlySpan<int> tokens, Span<float> logits, bool allLogits, bool classify)
    {
        if (tokens.Length == 0)
        {
            throw new ArgumentException("No tokens to run.", nameof(tokens));
        }
        if (tokens.Length > Context - Position)
        {
            throw new InvalidOperationException($"{tokens.Length} more tokens do not fit in the context: {Position} of {Context} positions are used.");
        }
        foreach (int id in tokens)
        {
            if ((uint)id >= (uint)_c.VocabularySize)
            {
                throw new ArgumentOutOfRangeException(nameof(tokens), id, $"token ids run from 0 to {_c.VocabularySize - 1}");
            }
        }
        for (int start = 0; start < tokens.Length; start += BatchSize)
        {
            int count = Math.Min(BatchSize, tokens.Length - start);
            bool last = start + count == tokens.Length;
            Batch(tokens.Slice(start, count), Position, tree: null);
            if (classify && allLogits)
            {
                Classify(0, count, logits.Slice(start * _c.VocabularySize, count * _c.VocabularySize));
            }
            else if (classify && last)
            {
                Classify(count - 1, 1, logits);
            }
            Position += count;
        }
    }

    /// <summary>
    /// Runs a tree of continuations of the cached sequence in one pass per <see cref="BatchSize"/> tokens (instead of
    /// one pass per continuation): token t follows token <paramref name="parents"/>[t] (an earlier index) or, for −1,
    /// the last position in the cache. Every token's logits go to <paramref name="logits"/> ((tokens, vocab_size)),
    /// each exactly (bit for bit) what running its branch alone after the cached sequence gives. The cached sequence stays as it
    /// was (<see cref="Position"/> does not move): the tree's keys and values are written after it and forgotten.
    /// </summary>
    public void EvaluateTree(ReadOnlySpan<int> tokens, ReadOnlySpan<int> parents, Span<float> logits)
    {
        int n = tokens.Length;
        if (n == 0 || parents.Length != n)
        {
            throw new ArgumentException($"A tree needs one parent per token ({n} tokens, {parents.Length} parents).");
        }
        if (logits.Length != (long)n * _c.VocabularySize)
        {
            throw new ArgumentException($"{n} tokens have {(long)n * _c.VocabularySize} logits, not {logits.Length}.", nameof(logits));
        }
        if (n > Context - Position)
        {
            throw new InvalidOperationException($"{n} tree tokens do not fit in the context: {Position} of {Context} positions are used.");
        }
        var depth = new int[n];
        var pathStarts = new int[n + 1];
        var paths = new List<int>();
        for (int t = 0; t < n; t++)
        {
            if ((uint)tokens[t] >= (uint)_c.VocabularySize)
            {
                throw new ArgumentOutOfRangeException(nameof(tokens), tokens[t], $"token ids run from 0 to {_c.VocabularySize - 1}");
            }
            int parent = parents[t];
            if (parent < -1 || parent >= t)
            {
                throw new ArgumentException($"Token {t}'s parent {parent} is not an earlier token of the tree (or -1).", nameof(parents));
            }
            depth[t] = parent < 0 ? 0 : depth[parent] + 1;
            // The path, root first: the parent's path, then this token's own slot.
            pathStarts[t] = paths.Count;
            if (parent >= 0)
            {
                for (int e = pathStarts[parent]; e < pathStarts[parent] + depth[parent] + 1; e++) paths.Add(paths[e]);
            }
            paths.Add(Position + t);
        }
        pathStarts[n] = paths.Count;
        int[] allPaths = paths.ToArray();
        for (int start = 0; start < n; start += BatchSize)
        {
            int count = Math.Min(BatchSize, n - start);
            var rope = new int[count];
            var starts = new int[count + 1];
            for (int t = 0; t < count; t++)
            {
                rope[t] = Position + depth[start + t];
                starts[t] = pathStarts[start + t] - pathStarts[start];
            }
            starts[count] = pathStarts[start + count] - pathStarts[start];
            int[] chunkPaths = allPaths[pathStarts[start]..pathStarts[start + count]];
            Batch(tokens.Slice(start, count), Position + start, new TreeBatch(Position, rope, starts, chunkPaths));
            Classify(0, count, logits.Slice(start * _c.VocabularySize, count * _c.VocabularySize));
        }
    }

    /// <summary>A tree batch's RoPE positions and, per token, the cache positions it attends to after the shared prefix.</summary>
    private sealed record TreeBatch(int PrefixLength, int[] RopePositions, int[] PathStarts, int[] PathPositions);

    /// <summary>
    /// Runs <paramref name="tokens"/> through every layer into the cache (from position <paramref name="slot"/>) and
    /// the residual stream: a sequence (token t at position slot + t, seeing everything before it), or a tree batch.
    /// </summary>
    private void Batch(ReadOnlySpan<int> tokens, int slot, TreeBatch? tree)
    {
        int n = tokens.Length;
        int dim = _c.HiddenSize;
        int qSize = _c.HeadCount * _c.HeadSize;
        int kvSize = _c.KvSize;
        int ffn = _c.FeedForwardSize;
        int p = slot;
        LlamaWeights w = _model.Weights;

        // token embeddings into the residual stream
        for (int t = 0; t < n; t++)
        {
            w.TokenEmbedding.DequantizeRow(tokens[t], _x.AsSpan(t * dim, dim));
        }

        Span<float> x = _x.AsSpan(0, n * dim);
        Span<float> xb = _xb.AsSpan(0, n * dim);
        Span<float> q = _q.AsSpan(0, n * qSize);
        Span<float> att = _att.AsSpan(0, n * qSize);
        Span<float> proj = _proj.AsSpan(0, n * dim);
        Span<float> gate = _gate.AsSpan(0, n * ffn);
        Span<float> up = _up.AsSpan(0, n * ffn);
        for (int l = 0; l < _c.LayerCount; l++)
        {
            LlamaLayerWeights layer = w.Layers[l];
            int layerCache = l * Context * kvSize;
            Span<float> keys = _keyCache.AsSpan(layerCache, Context * kvSize);
            Span<float> values = _valueCache.AsSpan(layerCache, Context * kvSize);
            Span<float> k = keys.Slice(p * kvSize, n * kvSize);   // this batch's keys, written into the cache
            Span<float> v = values.Slice(p * kvSize, n * kvSize);

            // attention RMSNorm; q, k, v from one quantized input; biases; RoPE on q and k
            Norm(x, layer.AttentionNorm, xb, n);
            Products(xb, n, layer.Query, q, layer.Key, k, layer.Value, v);
            AddBias(q, layer.QueryBias, n);
            AddBias(k, layer.KeyBias, n);
            AddBias(v, layer.ValueBias, n);
            for (int t = 0; t < n; t++)
            {
                int position = tree is null ? p + t : tree.RopePositions[t];
                _rope.Apply(q.Slice(t * qSize, qSize), position, _floatPath);
                _rope.Apply(k.Slice(t * kvSize, kvSize), position, _floatPath);
            }

            // causal grouped-query attention: token t sees positions 0 .. p + t (a tree token: the prefix and its
            // own branch); (token, head) pairs on the pool
            if (tree is null)
            {
                _attention.Compute(q, keys, values, p + 1, n, _c.HeadCount, _c.KvHeadCount, _c.HeadSize, _attentionScale, att);
            }
            else
            {
                _attention.ComputeTree(q, keys, values, tree.PrefixLength, n, tree.PathStarts, tree.PathPositions, _c.HeadCount, _c.KvHeadCount, _c.HeadSize, _attentionScale, att);
            }

            // output projection and residual
            Product(layer.AttentionOutput, att, n, proj);
            TensorPrimitives.Add(x, proj, x);

            // feed-forward RMSNorm, gate and up from one quantized input, SwiGLU, down projection and residual
            Norm(x, layer.FeedForwardNorm, xb, n);
            Products(xb, n, layer.Gate, gate, layer.Up, up);
            SwiGlu.Compute(gate, up, gate, _floatPath);
            Product(layer.Down, gate, n, proj);
            TensorPrimitives.Add(x, proj, x);
        }
    }

    /// <summary>Final RMSNorm and the output matrix for batch rows [first, first + count).</summary>
    private void Classify(int first, int count, Span<float> logits)
    {
        int dim = _c.HiddenSize;
        Span<float> rows = _xb.AsSpan(0, count * dim);
        for (int t = 0; t < count; t++)
        {
            RmsNorm.Compute(_x.AsSpan((first + t) * dim, dim), _model.Weights.OutputNorm, _c.RmsEpsilon, rows.Slice(t * dim, dim), _floatPath);
        }
        Product(_model.Weights.Output, rows, count, logits);
    }

    private void Norm(ReadOnlySpan<float> x, float[] weight, Span<float> y, int n)
    {
        int dim = _c.HiddenSize;
        for (int t = 0; t < n; t++)
        {
            RmsNorm.Compute(x.Slice(t * dim, dim), weight, _c.RmsEpsilon, y.Slice(t * dim, dim), _floatPath);
        }
    }

    private static void AddBias(Span<float> y, float[]? bias, int n)
    {
        if (bias is null)
        {
            return;
        }
        for (int t = 0; t < n; t++)
        {
            Span<float> row = y.Slice(t * bias.Length, bias.Length);
            TensorPrimitives.Add(row, bias, row);
        }
    }

    /// <summary>Products of one input with two or three matrices: quantized once if they are all quantized.</summary>
    private void Products(ReadOnlySpan<float> x, int n, DecoderMatrix a, Span<float> ya, DecoderMatrix b, Span<float> yb, DecoderMatrix? c = null, Span<float> yc = default)
    {
        if (a.Quantized is not null && b.Quantized is not null && (c is null || c.Quantized is not null))
        {
            _matMul.Quantize(x, n, a.Columns, _quantized);
            _matMul.Multiply(a.Quantized, _quantized, ya);
            _matMul.Multiply(b.Quantized, _quantized, yb);
            if (c is not null)
            {
                _matMul.Multiply(c.Quantized!, _quantized, yc);
            }
            return;
        }
        Product(a, x, n, ya);
        Product(b, x, n, yb);
        if (c is not null)
        {
            Product(c, x, n, yc);
        }
    }

    private unsafe void Product(DecoderMatrix matrix, ReadOnlySpan<float> x, int n, Span<float> y)
    {
        if (matrix.Quantized is not null)
        {
            _matMul.Multiply(matrix.Quantized, x, n, y);
        }
        else
        {
            _dense.Multiply(matrix.Type, matrix.Data, matrix.Rows, matrix.Columns, x, n, y);
        }
    }

    public void Dispose() => _matMul.Dispose();
}

/// <summary>A decoder's KV cache after a prefix (<see cref="LlamaDecoder.SaveState"/>).</summary>
public sealed class DecoderState
{
    internal DecoderState(LlamaConfig config, int positions, float[] keys, float[] values)
    {
        Config = config;
        Positions = positions;
        Keys = keys;
        Values = values;
    }

    internal LlamaConfig Config { get; }

    /// <summary>Positions held: the prefix's tokens.</summary>
    public int Positions { get; }

    internal float[] Keys { get; }   // (layer, positions, kv_dim)
    internal float[] Values { get; } // (layer, positions, kv_dim)

    public long Bytes => 2L * Keys.Length * sizeof(float);
}

/// <summary>Chosen rows of a decoder's output matrix (<see cref="LlamaDecoder.CreateSubset"/>): logits for those token ids only.</summary>
public sealed unsafe class LogitSubset
{
    internal LogitSubset(DecoderMatrix output, ReadOnlySpan<int> ids)
    {
        if (ids.IsEmpty)
        {
            throw new ArgumentException("A subset needs at least one token id.", nameof(ids));
        }
        Output = output;
        Ids = ids.ToArray();
        Rows = new QuantizedMatrix?[Ids.Length];
        for (int i = 0; i < Ids.Length; i++)
        {
            if ((uint)Ids[i] >= (uint)output.Rows)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), Ids[i], $"token ids run from 0 to {output.Rows - 1}");
            }
            if (output.Quantized is not null)
            {
                Rows[i] = QuantizedMatrix.View(output.Type, 1, output.Columns, output.Data + Ids[i] * output.RowBytes, output.RowBytes);
            }
        }
    }

    internal DecoderMatrix Output { get; }
    internal int[] Ids { get; }
    internal QuantizedMatrix?[] Rows { get; } // one-row views of the output matrix, for quantized types

    public int Count => Ids.Length;
}
