using System.Numerics.Tensors;

namespace EdgeSlm.Kernels.Attention;

/// <summary>
/// One query token's attention over the keys and values of positions 0 .. <c>length</c> − 1 of a KV cache, with
/// grouped-query heads: query head h reads key/value head h / (heads / kvHeads), as llama.cpp broadcasts them.
/// Causality is the caller's: it passes the positions up to and including the query's own. The reference sums the
/// softmax in double as ggml does; the vector tier uses TensorPrimitives (float sums).
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
        int heads, int kvHeads, int headSize, float scale, Span<float> scores, Span<float> output)
    {
        Validate(query, keys, values, length, heads, kvHeads, headSize, scores, output);
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
        int kvStride = kvHeads * headSize;
        Span<float> s = scores[..length];
        for (int h = 0; h < heads; h++)
        {
            int kvOffset = h / group * headSize;
            ReadOnlySpan<float> q = query.Slice(h * headSize, headSize);
            for (int j = 0; j < length; j++)
            {
                s[j] = TensorPrimitives.Dot(q, keys.Slice(j * kvStride + kvOffset, headSize)) * scale;
            }
            TensorPrimitives.SoftMax(s, s);
            Span<float> o = output.Slice(h * headSize, headSize);
            o.Clear();
            for (int j = 0; j < length; j++)
            {
                TensorPrimitives.MultiplyAdd(values.Slice(j * kvStride + kvOffset, headSize), s[j], o, o);
            }
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
