using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EdgeSlm.Kernels.Dispatch;
using EdgeSlm.Kernels.MatMul;


namespace EdgeSlm.Kernels.Attention;

/// <summary>
/// One query token's attention over the keys and values of positions 0 .. <c>length</c> − 1 of a KV cache, with
/// grouped-query heads: query head h reads key/value head h / (heads / kvHeads), as llama.cpp broadcasts them.
/// Causality is the caller's: it passes the positions up to and including the query's own. The reference sums the
/// softmax in double as ggml does; the vector tier uses Vector&lt;T&gt; loops (float sums).
/// </summary>
public static class GroupedQueryAttention
{
    /// <param name="query">(heads, headSize) the query token's heads.</param>
    /// <param name="keys">(≥ length, kvHeads, headSize) cached keys, position after position.</param>
    /// <param name="values">(≥ length, kvHeads, headSize) cached values.</param>
    /// <param name="length">Positions attended to (1 or more).</param>
    /// <param name="scores">(≥ length) scratch.</param>
    /// <param name="output">(heads, headSize) the attention output.</param>
    public static void Compute(ReadOnlySpan<float> query, ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int length,
        int heads, int kvHeads, int headSize, float scale, Span<float> scores, Span<float> output, FloatPath? path = null)
    {
        Validate(query, keys, values, length, heads, kvHeads, headSize, scores, output);
        if ((path ?? FloatPaths.Default) is FloatPath.Reference)
        {
            ComputeReference(query, keys, values, length, heads, kvHeads, headSize, scale, scores, output);
            return;
        }
        ComputeVector(query, keys, values, length, heads, kvHeads, headSize, scale, scores, output);
    }

    public static void ComputeReference(ReadOnlySpan<float> query, ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int length,
        int heads, int kvHeads, int headSize, float scale, Span<float> scores, Span<float> output)
    {
        Validate(query, keys, values, length, heads, kvHeads, headSize, scores, output);
        int group = heads / kvHeads;
        int kvStride = kvHeads * headSize;
        for (int h = 0; h < heads; h++)
        {
            int kvOffset = h / group * headSize;
            ReadOnlySpan<float> q = query.Slice(h * headSize, headSize);
            float max = float.NegativeInfinity;
            for (int j = 0; j < length; j++)
            {
                ReadOnlySpan<float> k = keys.Slice(j * kvStride + kvOffset, headSize);
                float dot = 0;
                for (int i = 0; i < headSize; i++)
                {
                    dot += q[i] * k[i];
                }
                scores[j] = dot * scale;
                max = Math.Max(max, scores[j]);
            }
            double sum = 0;
            for (int j = 0; j < length; j++)
            {
                scores[j] = MathF.Exp(scores[j] - max);
                sum += scores[j];
            }
            float inverse = (float)(1.0 / sum);
            Span<float> o = output.Slice(h * headSize, headSize);
            o.Clear();
            for (int j = 0; j < length; j++)
            {
                float weight = scores[j] * inverse;
                ReadOnlySpan<float> v = values.Slice(j * kvStride + kvOffset, headSize);
                for (int i = 0; i < headSize; i++)
                {
                    o[i] += weight * v[i];
                }
            }
        }
    }

    public static void ComputeVector(ReadOnlySpan<float> query, ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int length,
        int heads, int kvHeads, int headSize, float scale, Span<float> scores, Span<float> output)
    {
        Validate(query, keys, values, length, heads, kvHeads, headSize, scores, output);
        int group = heads / kvHeads;
        for (int h = 0; h < heads; h++)
        {
            HeadVector(query.Slice(h * headSize, headSize), keys, values, length, h / group * headSize, kvHeads * headSize, scale, scores, output.Slice(h * headSize, headSize));
        }
    }

    /// <summary>One query head over positions 0 .. length − 1 of one KV head (at <paramref name="kvOffset"/> in each position's row).</summary>
    internal static void HeadVector(ReadOnlySpan<float> q, ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int length,
        int kvOffset, int kvStride, float scale, Span<float> scores, Span<float> o) =>
        HeadVector(q, keys, values, length, ReadOnlySpan<int>.Empty, kvOffset, kvStride, scale, scores, o);

    // One head row is 64 floats in these models: a call into TensorPrimitives per position cost more than its
    // arithmetic (the prompt of 60 intents took 11 s to build, docs/slm.md); inlined Vector<T> loops instead.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        int n = a.Length;
        ref float ra = ref MemoryMarshal.GetReference(a);
        ref float rb = ref MemoryMarshal.GetReference(b[..n]);
        var sum = Vector<float>.Zero;
        int i = 0;
        for (; i <= n - Vector<float>.Count; i += Vector<float>.Count)
        {
            sum += Vector.LoadUnsafe(ref ra, (nuint)i) * Vector.LoadUnsafe(ref rb, (nuint)i);
        }
        float total = Vector.Sum(sum);
        for (; i < n; i++)
        {
            total += a[i] * b[i];
        }
        return total;
    }

    /// <summary>o += v · weight.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddScaled(ReadOnlySpan<float> v, float weight, Span<float> o)
    {
        int n = o.Length;
        ref float rv = ref MemoryMarshal.GetReference(v[..n]);
        ref float ro = ref MemoryMarshal.GetReference(o);
        var w = new Vector<float>(weight);
        int i = 0;
        for (; i <= n - Vector<float>.Count; i += Vector<float>.Count)
        {
            (Vector.LoadUnsafe(ref ro, (nuint)i) + Vector.LoadUnsafe(ref rv, (nuint)i) * w).StoreUnsafe(ref ro, (nuint)i);
        }
        for (; i < n; i++)
        {
            o[i] += v[i] * weight;
        }
    }

    /// <summary>
    /// One query head over positions 0 .. prefixLength − 1 and then the positions of <paramref name="path"/>, in that
    /// order, as if the cache held those positions one after another: a token of a tree batch gets exactly what it
    /// gets run alone (a plain prefix is the empty path).
    /// </summary>
    internal static void HeadVector(ReadOnlySpan<float> q, ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int prefixLength, ReadOnlySpan<int> path,
        int kvOffset, int kvStride, float scale, Span<float> scores, Span<float> o)
    {
        int headSize = q.Length;
        int length = prefixLength + path.Length;
        Span<float> s = scores[..length];
        for (int j = 0; j < prefixLength; j++)
        {
            s[j] = Dot(q, keys.Slice(j * kvStride + kvOffset, headSize)) * scale;
        }
        for (int e = 0; e < path.Length; e++)
        {
            s[prefixLength + e] = Dot(q, keys.Slice(path[e] * kvStride + kvOffset, headSize)) * scale;
        }
        TensorPrimitives.SoftMax(s, s);
        o.Clear();
        for (int j = 0; j < prefixLength; j++)
        {
            AddScaled(values.Slice(j * kvStride + kvOffset, headSize), s[j], o);
        }
        for (int e = 0; e < path.Length; e++)
        {
            AddScaled(values.Slice(path[e] * kvStride + kvOffset, headSize), s[prefixLength + e], o);
        }
    }

    private static void Validate(ReadOnlySpan<float> query, ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int length,
        int heads, int kvHeads, int headSize, Span<float> scores, Span<float> output)
    {
        if (heads < 1 || kvHeads < 1 || headSize < 1 || heads % kvHeads != 0)
        {
            throw new ArgumentException($"Grouped-query attention needs heads a positive multiple of the KV heads ({heads} heads, {kvHeads} KV heads, head size {headSize}).");
        }
        long kv = (long)length * kvHeads * headSize;
        if (length < 1 || keys.Length < kv || values.Length < kv || scores.Length < length)
        {
            throw new ArgumentException($"Attending to {length} positions needs at least {kv} keys and values and {length} scores (got {keys.Length}, {values.Length}, {scores.Length}).");
        }
        if (query.Length != heads * headSize || output.Length != heads * headSize)
        {
            throw new ArgumentException($"{heads} heads of {headSize} need {heads * headSize} query and output values (got {query.Length}, {output.Length}).");
        }
    }
}

/// <summary>
/// The attention of a batch of query tokens, token t attending to positions 0 .. firstLength − 1 + t of the cache,
/// its (token, head) pairs split over the worker pool of a <see cref="MatMul.QuantMatMul"/>. Each pair is computed
/// as <see cref="GroupedQueryAttention.ComputeVector"/> computes it, so the result does not depend on the threads.
/// Not thread-safe; allocates nothing once each pool thread has seen the longest context (a scratch row per thread).
/// </summary>
public sealed unsafe class ParallelGroupedQueryAttention
{
    private const int MaxChunks = 1024;

    [ThreadStatic]
    private static float[]? t_scores;

    private readonly MatMul.QuantMatMul _threads;
    private readonly FloatPath _path; // the reference runs one token at a time on the caller's thread
    private readonly Action<int> _runChunk;
    private float* _queries, _keys, _values, _output;
    private int _keyCount, _firstLength, _tokens, _heads, _kvHeads, _headSize, _chunks;
    private float _scale;
    private int[]? _pathStarts, _pathPositions; // tree batches: token t attends to the prefix, then _pathPositions[_pathStarts[t] .. _pathStarts[t + 1])

    private readonly int _maxPositions;

    /// <param name="maxPositions">The most positions a token attends to (the cache's length): each thread's scratch row.</param>
    public ParallelGroupedQueryAttention(MatMul.QuantMatMul threads, int maxPositions)
    {
        ArgumentNullException.ThrowIfNull(threads);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPositions, 1);
        _threads = threads;
        _path = FloatPaths.For(threads.Path);
        _maxPositions = maxPositions;
        _runChunk = RunChunk;
    }

    /// <param name="queries">(tokens, heads, headSize).</param>
    /// <param name="keys">(≥ firstLength − 1 + tokens, kvHeads, headSize) the cache, this batch's keys included.</param>
    /// <param name="output">(tokens, heads, headSize).</param>
    public void Compute(ReadOnlySpan<float> queries, ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int firstLength, int tokens,
        int heads, int kvHeads, int headSize, float scale, Span<float> output)
    {
        if (tokens < 1 || firstLength < 1 || heads < 1 || kvHeads < 1 || headSize < 1 || heads % kvHeads != 0)
        {
            throw new ArgumentException($"Attention needs tokens, positions and heads a multiple of the KV heads (tokens {tokens}, first length {firstLength}, heads {heads}, KV heads {kvHeads}, head size {headSize}).");
        }
        if (firstLength - 1 + tokens > _maxPositions)
        {
            throw new ArgumentException($"Token {tokens - 1} attends to {firstLength - 1 + tokens} positions; this attention was made for {_maxPositions}.");
        }
        long kv = (long)(firstLength - 1 + tokens) * kvHeads * headSize;
        if (queries.Length != (long)tokens * heads * headSize || output.Length != queries.Length || keys.Length < kv || values.Length < kv)
        {
            throw new ArgumentException($"{tokens} tokens of {heads} heads of {headSize} over {firstLength - 1 + tokens} positions need {(long)tokens * heads * headSize} queries and outputs and {kv} keys and values (got {queries.Length}, {output.Length}, {keys.Length}, {values.Length}).");
        }
        if (_path is FloatPath.Reference)
        {
            var scores = new float[firstLength - 1 + tokens];
            int size = heads * headSize;
            for (int t = 0; t < tokens; t++)
            {
                GroupedQueryAttention.ComputeReference(queries.Slice(t * size, size), keys, values, firstLength + t, heads, kvHeads, headSize, scale, scores, output.Slice(t * size, size));
            }
            return;
        }
        RunPairs(queries, keys, values, firstLength, tokens, heads, kvHeads, headSize, scale, output);
    }

    /// <summary>The (token, head) pairs in chunks, on the pool when it has more than one thread.</summary>
    private void RunPairs(ReadOnlySpan<float> queries, ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int firstLength, int tokens,
        int heads, int kvHeads, int headSize, float scale, Span<float> output)
    {
        fixed (float* q = queries)
        fixed (float* k = keys)
        fixed (float* v = values)
        fixed (float* o = output)
        {
            _queries = q;
            _keys = k;
            _values = v;
            _output = o;
            (_keyCount, _firstLength, _tokens, _heads, _kvHeads, _headSize, _scale) = (Math.Min(keys.Length, values.Length), firstLength, tokens, heads, kvHeads, headSize, scale);
            _chunks = Math.Min(tokens * heads, MaxChunks);
            int threads = _threads.ThreadsNow;
            if (threads == 1 || _chunks == 1)
            {
                for (int c = 0; c < _chunks; c++) RunChunk(c);
            }
            else
            {
                _threads.Pool.Run(_runChunk, _chunks, threads);
            }
            _queries = _keys = _values = _output = null;
        }
    }

    /// <summary>
    /// A tree batch: every token attends to positions 0 .. prefixLength − 1 of the cache, then to the cache positions
    /// <paramref name="pathPositions"/>[<paramref name="pathStarts"/>[t] .. <paramref name="pathStarts"/>[t + 1]) (its
    /// ancestors in the batch and itself, root first). Several continuations of one prefix so run in one pass, each
    /// token getting exactly what it would get with its own branch alone in the cache.
    /// </summary>
    public void ComputeTree(ReadOnlySpan<float> queries, ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int prefixLength, int tokens,
        int[] pathStarts, int[] pathPositions, int heads, int kvHeads, int headSize, float scale, Span<float> output)
    {
        ArgumentNullException.ThrowIfNull(pathStarts);
        ArgumentNullException.ThrowIfNull(pathPositions);
        if (tokens < 1 || prefixLength < 0 || heads < 1 || kvHeads < 1 || headSize < 1 || heads % kvHeads != 0 || pathStarts.Length < tokens + 1)
        {
            throw new ArgumentException($"A tree batch needs tokens, paths and heads a multiple of the KV heads (tokens {tokens}, prefix {prefixLength}, heads {heads}, KV heads {kvHeads}, path starts {pathStarts.Length}).");
        }
        long kvRow = (long)kvHeads * headSize;
        int longest = 0;
        for (int t = 0; t < tokens; t++)
        {
            int length = pathStarts[t + 1] - pathStarts[t];
            if (length < 1) throw new ArgumentException($"Token {t} attends to no position of its own path.", nameof(pathStarts));
            longest = Math.Max(longest, length);
            for (int e = pathStarts[t]; e < pathStarts[t + 1]; e++)
            {
                if (pathPositions[e] < prefixLength || (pathPositions[e] + 1) * kvRow > Math.Min(keys.Length, values.Length))
                {
                    throw new ArgumentException($"Token {t}'s path names position {pathPositions[e]}, outside the cache after the prefix.", nameof(pathPositions));
                }
            }
        }
        if (prefixLength + longest > _maxPositions || queries.Length != (long)tokens * heads * headSize || output.Length != queries.Length || prefixLength * kvRow > Math.Min(keys.Length, values.Length))
        {
            throw new ArgumentException($"{tokens} tokens of {heads} heads of {headSize} over {prefixLength} + {longest} positions do not fit (made for {_maxPositions} positions; got {queries.Length} queries, {output.Length} outputs, {keys.Length} keys).");
        }
        int size = heads * headSize;
        if (_path is FloatPath.Reference)
        {
            // The reference: each token's positions gathered into a cache of their own, then the one-token reference.
            int positions = prefixLength + longest;
            var gatheredKeys = new float[positions * kvRow];
            var gatheredValues = new float[positions * kvRow];
            keys[..(int)(prefixLength * kvRow)].CopyTo(gatheredKeys);
            values[..(int)(prefixLength * kvRow)].CopyTo(gatheredValues);
            var scores = new float[positions];
            for (int t = 0; t < tokens; t++)
            {
                int at = prefixLength;
                for (int e = pathStarts[t]; e < pathStarts[t + 1]; e++, at++)
                {
                    keys.Slice((int)(pathPositions[e] * kvRow), (int)kvRow).CopyTo(gatheredKeys.AsSpan((int)(at * kvRow)));
                    values.Slice((int)(pathPositions[e] * kvRow), (int)kvRow).CopyTo(gatheredValues.AsSpan((int)(at * kvRow)));
                }
                GroupedQueryAttention.ComputeReference(queries.Slice(t * size, size), gatheredKeys, gatheredValues, at, heads, kvHeads, headSize, scale, scores, output.Slice(t * size, size));
            }
            return;
        }
        _pathStarts = pathStarts;
        _pathPositions = pathPositions;
        try
        {
            RunPairs(queries, keys, values, prefixLength, tokens, heads, kvHeads, headSize, scale, output);
        }
        finally
        {
            _pathStarts = _pathPositions = null;
        }
    }

    private void RunChunk(int chunk)
    {
        int pairs = _tokens * _heads;
        int first = (int)((long)pairs * chunk / _chunks);
        int end = (int)((long)pairs * (chunk + 1) / _chunks);
        int longest = _pathStarts is null ? _firstLength + _tokens - 1 : _maxPositions;
        float[] scores = t_scores is { } existing && existing.Length >= longest ? existing : (t_scores = new float[_maxPositions]);
        int group = _heads / _kvHeads;
        int qSize = _heads * _headSize;
        var keys = new ReadOnlySpan<float>(_keys, _keyCount);
        var values = new ReadOnlySpan<float>(_values, _keyCount);
        for (int pair = first; pair < end; pair++)
        {
            int t = pair / _heads, h = pair % _heads;
            if (_pathStarts is not null)
            {
                GroupedQueryAttention.HeadVector(new ReadOnlySpan<float>(_queries + (long)t * qSize + h * _headSize, _headSize), keys, values, _firstLength,
                    _pathPositions.AsSpan(_pathStarts[t], _pathStarts[t + 1] - _pathStarts[t]), h / group * _headSize, _kvHeads * _headSize, _scale, scores,
                    new Span<float>(_output + (long)t * qSize + h * _headSize, _headSize));
                continue;
            }
            GroupedQueryAttention.HeadVector(new ReadOnlySpan<float>(_queries + (long)t * qSize + h * _headSize, _headSize), keys, values,
                _firstLength + t, h / group * _headSize, _kvHeads * _headSize, _scale, scores, new Span<float>(_output + (long)t * qSize + h * _headSize, _headSize));
        }
    }
}
