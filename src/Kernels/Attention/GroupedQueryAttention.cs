using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;
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
    // arithmetic (the prompt of 60 intents took 11 s to build, docs/slm.md); inlined vector loops instead.
    //
    // A score is the dot product of the query with one position's key. Over a run of positions the scores are
    // taken 8 at a time on x64 (4 on ARM64): 8 vectors of lane sums, reduced together by horizontal adds into one
    // vector of 8 scores, instead of a full horizontal sum per position. Every score, blocked or alone, is summed
    // in the same order (lane sums by FMA over the row; then lanes (0+1)+(2+3), and on x64 that plus (4+5)+(6+7)),
    // so it does not depend on which positions share its block: a tree batch's token scores exactly what it
    // scores alone.

    /// <summary>The scores of positions first .. first + count − 1, whose keys are <paramref name="kvStride"/> apart.</summary>
    private static void Scores(ReadOnlySpan<float> q, ReadOnlySpan<float> keys, int first, int count, int kvOffset, int kvStride, float scale, Span<float> s)
    {
        int headSize = q.Length;
        if (count > 0 && (long)(first + count - 1) * kvStride + kvOffset + headSize > keys.Length)
        {
            throw new ArgumentException($"Keys of {first + count} positions do not fit in {keys.Length} floats.", nameof(keys));
        }
        ref float rq = ref MemoryMarshal.GetReference(q);
        ref float rk = ref MemoryMarshal.GetReference(keys);
        int j = 0;
        if (Avx.IsSupported && headSize % 8 == 0)
        {
            for (; j + 8 <= count; j += 8)
            {
                Scores8(ref rq, ref Unsafe.Add(ref rk, (nint)(first + j) * kvStride + kvOffset), kvStride, headSize, scale).StoreUnsafe(ref MemoryMarshal.GetReference(s), (nuint)j);
            }
        }
        else if (AdvSimd.Arm64.IsSupported && headSize % 4 == 0)
        {
            for (; j + 4 <= count; j += 4)
            {
                Scores4(ref rq, ref Unsafe.Add(ref rk, (nint)(first + j) * kvStride + kvOffset), kvStride, headSize, scale).StoreUnsafe(ref MemoryMarshal.GetReference(s), (nuint)j);
            }
        }
        for (; j < count; j++)
        {
            s[j] = Dot(q, keys.Slice((first + j) * kvStride + kvOffset, headSize)) * scale;
        }
    }

    /// <summary>x64: the scores of 8 positions from 8 key rows <paramref name="stride"/> floats apart.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Scores8(ref float q, ref float k, nint stride, int headSize, float scale)
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        for (nint d = 0; d < headSize; d += 8)
        {
            Vector256<float> x = Vector256.LoadUnsafe(ref q, (nuint)d);
            ref float kd = ref Unsafe.Add(ref k, d);
            a0 = Vector256.MultiplyAddEstimate(x, Vector256.LoadUnsafe(ref kd), a0);
            a1 = Vector256.MultiplyAddEstimate(x, Vector256.LoadUnsafe(ref Unsafe.Add(ref kd, stride)), a1);
            a2 = Vector256.MultiplyAddEstimate(x, Vector256.LoadUnsafe(ref Unsafe.Add(ref kd, 2 * stride)), a2);
            a3 = Vector256.MultiplyAddEstimate(x, Vector256.LoadUnsafe(ref Unsafe.Add(ref kd, 3 * stride)), a3);
            a4 = Vector256.MultiplyAddEstimate(x, Vector256.LoadUnsafe(ref Unsafe.Add(ref kd, 4 * stride)), a4);
            a5 = Vector256.MultiplyAddEstimate(x, Vector256.LoadUnsafe(ref Unsafe.Add(ref kd, 5 * stride)), a5);
            a6 = Vector256.MultiplyAddEstimate(x, Vector256.LoadUnsafe(ref Unsafe.Add(ref kd, 6 * stride)), a6);
            a7 = Vector256.MultiplyAddEstimate(x, Vector256.LoadUnsafe(ref Unsafe.Add(ref kd, 7 * stride)), a7);
        }
        // [p0 p1 p2 p3] over lanes 0..3 | the same over lanes 4..7, for positions 0..3 and 4..7; then the halves added.
        Vector256<float> low = Avx.HorizontalAdd(Avx.HorizontalAdd(a0, a1), Avx.HorizontalAdd(a2, a3));
        Vector256<float> high = Avx.HorizontalAdd(Avx.HorizontalAdd(a4, a5), Avx.HorizontalAdd(a6, a7));
        return (Avx.Permute2x128(low, high, 0x20) + Avx.Permute2x128(low, high, 0x31)) * scale;
    }

    /// <summary>ARM64: the scores of 4 positions from 4 key rows <paramref name="stride"/> floats apart.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Scores4(ref float q, ref float k, nint stride, int headSize, float scale)
    {
        Vector128<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (nint d = 0; d < headSize; d += 4)
        {
            Vector128<float> x = Vector128.LoadUnsafe(ref q, (nuint)d);
            ref float kd = ref Unsafe.Add(ref k, d);
            a0 = Vector128.MultiplyAddEstimate(x, Vector128.LoadUnsafe(ref kd), a0);
            a1 = Vector128.MultiplyAddEstimate(x, Vector128.LoadUnsafe(ref Unsafe.Add(ref kd, stride)), a1);
            a2 = Vector128.MultiplyAddEstimate(x, Vector128.LoadUnsafe(ref Unsafe.Add(ref kd, 2 * stride)), a2);
            a3 = Vector128.MultiplyAddEstimate(x, Vector128.LoadUnsafe(ref Unsafe.Add(ref kd, 3 * stride)), a3);
        }
        return AdvSimd.Arm64.AddPairwise(AdvSimd.Arm64.AddPairwise(a0, a1), AdvSimd.Arm64.AddPairwise(a2, a3)) * scale;
    }

    /// <summary>One score: the same sums in the same order as a lane of <see cref="Scores8"/> or <see cref="Scores4"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        int n = a.Length;
        ref float ra = ref MemoryMarshal.GetReference(a);
        ref float rb = ref MemoryMarshal.GetReference(b[..n]);
        if (Avx.IsSupported && n % 8 == 0)
        {
            Vector256<float> sum = default;
            for (int i = 0; i < n; i += 8)
            {
                sum = Vector256.MultiplyAddEstimate(Vector256.LoadUnsafe(ref ra, (nuint)i), Vector256.LoadUnsafe(ref rb, (nuint)i), sum);
            }
            return ((sum[0] + sum[1]) + (sum[2] + sum[3])) + ((sum[4] + sum[5]) + (sum[6] + sum[7]));
        }
        if (AdvSimd.Arm64.IsSupported && n % 4 == 0)
        {
            Vector128<float> sum = default;
            for (int i = 0; i < n; i += 4)
            {
                sum = Vector128.MultiplyAddEstimate(Vector128.LoadUnsafe(ref ra, (nuint)i), Vector128.LoadUnsafe(ref rb, (nuint)i), sum);
            }
            return (sum[0] + sum[1]) + (sum[2] + sum[3]);
        }
        float total = 0;
        for (int i = 0; i < n; i++)
        {
            total = MathF.FusedMultiplyAdd(a[i], b[i], total);
        }
        return total;
    }

    /// <summary>o += v · weight, element by element as one fused multiply-add (the order <see cref="WeightedSum"/> keeps).</summary>
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
            Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref rv, (nuint)i), w, Vector.LoadUnsafe(ref ro, (nuint)i)).StoreUnsafe(ref ro, (nuint)i);
        }
        for (; i < n; i++)
        {
            o[i] = MathF.FusedMultiplyAdd(v[i], weight, o[i]);
        }
    }

    /// <summary>
    /// o = Σ weights[j] · v_j over positions 0 .. count − 1 (values <paramref name="kvStride"/> apart): 32 floats of o
    /// at a time held in registers while the positions stream past, rather than o read and written back for every
    /// position (which chained each position's adds to the last one's store). Per element the same fused
    /// multiply-adds in the same order as <see cref="AddScaled"/> from a cleared o.
    /// </summary>
    private static void WeightedSum(ReadOnlySpan<float> values, ReadOnlySpan<float> weights, int count, int kvOffset, int kvStride, Span<float> o)
    {
        int headSize = o.Length;
        o.Clear();
        if (count == 0)
        {
            return;
        }
        if ((long)(count - 1) * kvStride + kvOffset + headSize > values.Length)
        {
            throw new ArgumentException($"Values of {count} positions do not fit in {values.Length} floats.", nameof(values));
        }
        if (headSize % 32 != 0 || !Vector.IsHardwareAccelerated || Vector<float>.Count > 8)
        {
            for (int j = 0; j < count; j++)
            {
                AddScaled(values.Slice(j * kvStride + kvOffset, headSize), weights[j], o);
            }
            return;
        }
        ref float rw = ref MemoryMarshal.GetReference(weights);
        ref float ro = ref MemoryMarshal.GetReference(o);
        int lanes = Vector<float>.Count;
        for (int c = 0; c < headSize; c += 32)
        {
            ref float v = ref Unsafe.Add(ref MemoryMarshal.GetReference(values), kvOffset + c);
            if (lanes == 8)
            {
                Vector<float> o0 = default, o1 = default, o2 = default, o3 = default;
                for (int j = 0; j < count; j++, v = ref Unsafe.Add(ref v, kvStride))
                {
                    var w = new Vector<float>(Unsafe.Add(ref rw, j));
                    o0 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref v), w, o0);
                    o1 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref v, 8), w, o1);
                    o2 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref v, 16), w, o2);
                    o3 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref v, 24), w, o3);
                }
                o0.StoreUnsafe(ref ro, (nuint)c);
                o1.StoreUnsafe(ref ro, (nuint)(c + 8));
                o2.StoreUnsafe(ref ro, (nuint)(c + 16));
                o3.StoreUnsafe(ref ro, (nuint)(c + 24));
            }
            else
            {
                // 4 lanes (NEON): eight registers of o.
                Vector<float> o0 = default, o1 = default, o2 = default, o3 = default, o4 = default, o5 = default, o6 = default, o7 = default;
                for (int j = 0; j < count; j++, v = ref Unsafe.Add(ref v, kvStride))
                {
                    var w = new Vector<float>(Unsafe.Add(ref rw, j));
                    o0 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref v), w, o0);
                    o1 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref v, 4), w, o1);
                    o2 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref v, 8), w, o2);
                    o3 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref v, 12), w, o3);
                    o4 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref v, 16), w, o4);
                    o5 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref v, 20), w, o5);
                    o6 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref v, 24), w, o6);
                    o7 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref v, 28), w, o7);
                }
                o0.StoreUnsafe(ref ro, (nuint)c);
                o1.StoreUnsafe(ref ro, (nuint)(c + 4));
                o2.StoreUnsafe(ref ro, (nuint)(c + 8));
                o3.StoreUnsafe(ref ro, (nuint)(c + 12));
                o4.StoreUnsafe(ref ro, (nuint)(c + 16));
                o5.StoreUnsafe(ref ro, (nuint)(c + 20));
                o6.StoreUnsafe(ref ro, (nuint)(c + 24));
                o7.StoreUnsafe(ref ro, (nuint)(c + 28));
            }
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
        Scores(q, keys, 0, prefixLength, kvOffset, kvStride, scale, s);
        for (int e = 0; e < path.Length; e++)
        {
            s[prefixLength + e] = Dot(q, keys.Slice(path[e] * kvStride + kvOffset, headSize)) * scale;
        }
        TensorPrimitives.SoftMax(s, s);
        WeightedSum(values, s, prefixLength, kvOffset, kvStride, o);
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
