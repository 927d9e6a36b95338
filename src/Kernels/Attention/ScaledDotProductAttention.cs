using System.Diagnostics;
using System.Numerics.Tensors;
using System.Numerics;
using System.Runtime.Intrinsics;
using EdgeSlm.Kernels.Dispatch;

namespace EdgeSlm.Kernels.Attention;

/// <summary>
/// Multi-head scaled dot-product attention over one sentence, float32:
/// context[i, h] = Σ_j softmax_j(scale · q[i, h] · k[j, h]) · v[j, h], where x[t, h] is the headSize floats of
/// head h in token t's row (rows of heads · headSize floats, heads side by side, as the projections write them).
/// </summary>
/// <remarks>
/// Why a kernel and not TensorPrimitives calls: at sentence lengths of about 10 tokens and heads of 32 floats,
/// one call per score and per value row (about 2,500 per layer) cost far more than their arithmetic. Here each
/// query costs one TensorPrimitives call (the exponentials of all its heads' scores), and the dot products and
/// weighted sums run in vectors along the head. The tiers differ from the reference only in the order of float
/// additions and in fused multiply-adds.
/// </remarks>
public static unsafe class ScaledDotProductAttention
{
    public delegate void Tier(float* query, float* key, float* value, float* context, int tokens, int heads, int headSize, float scale, float* scores);

    /// <summary>
    /// Attention of <paramref name="tokens"/> tokens: <paramref name="query"/>, <paramref name="key"/>,
    /// <paramref name="value"/> and <paramref name="context"/> hold tokens rows of heads · headSize floats;
    /// <paramref name="scores"/> is scratch of at least heads · tokens floats.
    /// </summary>
    public static void Compute(ReadOnlySpan<float> query, ReadOnlySpan<float> key, ReadOnlySpan<float> value, Span<float> context,
        int tokens, int heads, int headSize, float scale, Span<float> scores, FloatPath? path = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(heads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(headSize);
        long rows = (long)tokens * heads * headSize;
        if (query.Length < rows || key.Length < rows || value.Length < rows || context.Length < rows)
        {
            throw new ArgumentException($"{tokens} tokens of {heads} heads × {headSize} need {rows} floats of query, key, value and context; got {query.Length}, {key.Length}, {value.Length} and {context.Length}");
        }
        if (scores.Length < (long)heads * tokens)
        {
            throw new ArgumentException($"{heads} heads × {tokens} tokens need {heads * tokens} floats of scores, not {scores.Length}", nameof(scores));
        }
        fixed (float* q = query, k = key, v = value, c = context, s = scores)
        {
            TierOf(path ?? FloatPaths.Default)(q, k, v, c, tokens, heads, headSize, scale, s);
        }
    }

    /// <summary>The tier of <paramref name="path"/>, or the widest below it that this CPU accelerates.</summary>
    public static Tier TierOf(FloatPath path) => path switch
    {
        FloatPath.Vector512 when Vector512.IsHardwareAccelerated => ComputeVector512,
        FloatPath.Vector or FloatPath.Vector512 when Vector.IsHardwareAccelerated => ComputeVector,
        _ => ComputeReference,
    };

    /// <summary>The definition, one score, exponential and product at a time.</summary>
    internal static void ComputeReference(float* query, float* key, float* value, float* context, int tokens, int heads, int headSize, float scale, float* scores)
    {
        int stride = heads * headSize;
        for (int i = 0; i < tokens; i++)
        {
            for (int h = 0; h < heads; h++)
            {
                float* q = query + i * stride + h * headSize;
                float max = float.NegativeInfinity;
                for (int j = 0; j < tokens; j++)
                {
                    float* k = key + j * stride + h * headSize;
                    float dot = 0f;
                    for (int d = 0; d < headSize; d++)
                    {
                        dot += q[d] * k[d];
                    }
                    scores[j] = dot * scale;
                    max = MathF.Max(max, scores[j]);
                }
                float sum = 0f;
                for (int j = 0; j < tokens; j++)
                {
                    scores[j] = MathF.Exp(scores[j] - max);
                    sum += scores[j];
                }
                float* c = context + i * stride + h * headSize;
                for (int d = 0; d < headSize; d++)
                {
                    float weighted = 0f;
                    for (int j = 0; j < tokens; j++)
                    {
                        weighted += scores[j] / sum * value[j * stride + h * headSize + d];
                    }
                    c[d] = weighted;
                }
            }
        }
    }

    /// <summary>Vector&lt;float&gt; along the head: NEON's 128 bits on ARM64, AVX2's 256 on x64.</summary>
    internal static void ComputeVector(float* query, float* key, float* value, float* context, int tokens, int heads, int headSize, float scale, float* scores)
    {
        Debug.Assert(Vector.IsHardwareAccelerated);
        int stride = heads * headSize;
        for (int i = 0; i < tokens; i++)
        {
            // scores[h · tokens + j] = scale · q[i, h] · k[j, h] minus the head's maximum.
            for (int h = 0; h < heads; h++)
            {
                float* q = query + i * stride + h * headSize;
                float* s = scores + h * tokens;
                for (int j = 0; j < tokens; j++)
                {
                    float* k = key + j * stride + h * headSize;
                    Vector<float> sum = Vector<float>.Zero;
                    int d = 0;
                    for (; d <= headSize - Vector<float>.Count; d += Vector<float>.Count)
                    {
                        sum = Vector.FusedMultiplyAdd(Vector.Load(q + d), Vector.Load(k + d), sum);
                    }
                    float dot = Vector.Sum(sum);
                    for (; d < headSize; d++)
                    {
                        dot += q[d] * k[d];
                    }
                    s[j] = dot * scale;
                }
                SubtractMaximum(s, tokens);
            }
            TensorPrimitives.Exp(new ReadOnlySpan<float>(scores, heads * tokens), new Span<float>(scores, heads * tokens));

            // context[i, h] = Σ_j e_j · v[j, h] / Σ_j e_j.
            for (int h = 0; h < heads; h++)
            {
                float* e = scores + h * tokens;
                float* c = context + i * stride + h * headSize;
                float* v = value + h * headSize;
                float inverse = 1f / Sum(e, tokens);
                int d = 0;
                for (; d <= headSize - 2 * Vector<float>.Count; d += 2 * Vector<float>.Count)
                {
                    Vector<float> weighted0 = Vector<float>.Zero, weighted1 = Vector<float>.Zero;
                    for (int j = 0; j < tokens; j++)
                    {
                        var weight = new Vector<float>(e[j]);
                        weighted0 = Vector.FusedMultiplyAdd(Vector.Load(v + j * stride + d), weight, weighted0);
                        weighted1 = Vector.FusedMultiplyAdd(Vector.Load(v + j * stride + d + Vector<float>.Count), weight, weighted1);
                    }
                    (weighted0 * inverse).Store(c + d);
                    (weighted1 * inverse).Store(c + d + Vector<float>.Count);
                }
                for (; d <= headSize - Vector<float>.Count; d += Vector<float>.Count)
                {
                    Vector<float> weighted = Vector<float>.Zero;
                    for (int j = 0; j < tokens; j++)
                    {
                        weighted = Vector.FusedMultiplyAdd(Vector.Load(v + j * stride + d), new Vector<float>(e[j]), weighted);
                    }
                    (weighted * inverse).Store(c + d);
                }
                ContextTail(e, v, c, d, tokens, headSize, stride, inverse);
            }
        }
    }

    /// <summary>As <see cref="ComputeVector"/> on 512-bit vectors (x64 with AVX-512): a head of 32 floats is two vectors.</summary>
    internal static void ComputeVector512(float* query, float* key, float* value, float* context, int tokens, int heads, int headSize, float scale, float* scores)
    {
        Debug.Assert(Vector512.IsHardwareAccelerated);
        int stride = heads * headSize;
        for (int i = 0; i < tokens; i++)
        {
            for (int h = 0; h < heads; h++)
            {
                float* q = query + i * stride + h * headSize;
                float* s = scores + h * tokens;
                for (int j = 0; j < tokens; j++)
                {
                    float* k = key + j * stride + h * headSize;
                    Vector512<float> sum = Vector512<float>.Zero;
                    int d = 0;
                    for (; d <= headSize - Vector512<float>.Count; d += Vector512<float>.Count)
                    {
                        sum = Vector512.FusedMultiplyAdd(Vector512.Load(q + d), Vector512.Load(k + d), sum);
                    }
                    float dot = Vector512.Sum(sum);
                    for (; d < headSize; d++)
                    {
                        dot += q[d] * k[d];
                    }
                    s[j] = dot * scale;
                }
                SubtractMaximum(s, tokens);
            }
            TensorPrimitives.Exp(new ReadOnlySpan<float>(scores, heads * tokens), new Span<float>(scores, heads * tokens));

            for (int h = 0; h < heads; h++)
            {
                float* e = scores + h * tokens;
                float* c = context + i * stride + h * headSize;
                float* v = value + h * headSize;
                float inverse = 1f / Sum(e, tokens);
                int d = 0;
                for (; d <= headSize - 2 * Vector512<float>.Count; d += 2 * Vector512<float>.Count)
                {
                    // Two vectors at a time: two independent chains of multiply-adds (a head of 32 floats in one pass).
                    Vector512<float> weighted0 = Vector512<float>.Zero, weighted1 = Vector512<float>.Zero;
                    for (int j = 0; j < tokens; j++)
                    {
                        Vector512<float> weight = Vector512.Create(e[j]);
                        weighted0 = Vector512.FusedMultiplyAdd(Vector512.Load(v + j * stride + d), weight, weighted0);
                        weighted1 = Vector512.FusedMultiplyAdd(Vector512.Load(v + j * stride + d + Vector512<float>.Count), weight, weighted1);
                    }
                    (weighted0 * inverse).Store(c + d);
                    (weighted1 * inverse).Store(c + d + Vector512<float>.Count);
                }
                for (; d <= headSize - Vector512<float>.Count; d += Vector512<float>.Count)
                {
                    Vector512<float> weighted = Vector512<float>.Zero;
                    for (int j = 0; j < tokens; j++)
                    {
                        weighted = Vector512.FusedMultiplyAdd(Vector512.Load(v + j * stride + d), Vector512.Create(e[j]), weighted);
                    }
                    (weighted * inverse).Store(c + d);
                }
                ContextTail(e, v, c, d, tokens, headSize, stride, inverse);
            }
        }
    }

    /// <summary>Softmax's shift: exp then never overflows, and the largest weight is 1.</summary>
    private static void SubtractMaximum(float* s, int tokens)
    {
        float max = float.NegativeInfinity;
        for (int j = 0; j < tokens; j++)
        {
            max = MathF.Max(max, s[j]);
        }
        for (int j = 0; j < tokens; j++)
        {
            s[j] -= max;
        }
    }

    private static float Sum(float* e, int tokens)
    {
        float sum = 0f;
        for (int j = 0; j < tokens; j++)
        {
            sum += e[j];
        }
        return sum;
    }

    /// <summary>The elements of a head past its last whole vector, from <paramref name="d"/> on.</summary>
    private static void ContextTail(float* e, float* v, float* c, int d, int tokens, int headSize, int stride, float inverse)
    {
        for (; d < headSize; d++)
        {
            float weighted = 0f;
            for (int j = 0; j < tokens; j++)
            {
                weighted += e[j] * v[j * stride + d];
            }
            c[d] = weighted * inverse;
        }
    }
}
