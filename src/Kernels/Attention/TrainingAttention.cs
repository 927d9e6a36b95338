using System.Numerics.Tensors;

namespace EdgeSlm.Kernels.Attention;

/// <summary>
/// Bidirectional multi-head softmax attention over one padded sequence, in the form training needs: the forward keeps
/// the probabilities, the backward turns d(context) into dq, dk, dv. q, k, v and context are (tokens, heads · headSize)
/// row-major, head h in columns [h·headSize, (h+1)·headSize); probabilities are (heads, tokens, tokens). A key whose
/// <c>keyValid</c> entry is false (padding) gets probability 0 from every query; rows of padding queries are computed
/// like the others and their gradients are whatever the caller passes in (zero, when the loss does not read them).
/// </summary>
public static class TrainingAttention
{
    public static void Forward(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int tokens, int heads, int headSize,
        ReadOnlySpan<bool> keyValid, Span<float> probabilities, Span<float> context)
    {
        Check(q, k, v, tokens, heads, headSize, keyValid, probabilities, context.Length);
        int width = heads * headSize;
        float scale = 1f / MathF.Sqrt(headSize);
        context[..(tokens * width)].Clear();
        for (int h = 0; h < heads; h++)
        {
            for (int i = 0; i < tokens; i++)
            {
                Span<float> p = probabilities.Slice((h * tokens + i) * tokens, tokens);
                ReadOnlySpan<float> qi = q.Slice(i * width + h * headSize, headSize);
                for (int j = 0; j < tokens; j++)
                {
                    p[j] = keyValid[j] ? TensorPrimitives.Dot(qi, k.Slice(j * width + h * headSize, headSize)) * scale : float.NegativeInfinity;
                }
                // Shifted by the maximum (TensorPrimitives.SoftMax is not), so no score overflows exp; masked keys give exp(−∞) = 0.
                TensorPrimitives.Subtract(p, TensorPrimitives.Max(p), p);
                TensorPrimitives.Exp(p, p);
                TensorPrimitives.Divide(p, TensorPrimitives.Sum(p), p);
                Span<float> ci = context.Slice(i * width + h * headSize, headSize);
                for (int j = 0; j < tokens; j++)
                {
                    if (p[j] != 0) TensorPrimitives.MultiplyAdd(v.Slice(j * width + h * headSize, headSize), p[j], ci, ci);
                }
            }
        }
    }

    /// <summary>
    /// dv[j] = Σ_i P[i,j]·dC[i]; dP[i,j] = dC[i]·v[j]; dS = P ⊙ (dP − Σ_j P·dP); dq[i] = s·Σ_j dS[i,j]·k[j];
    /// dk[j] = s·Σ_i dS[i,j]·q[i], with s = 1/√headSize. dq, dk and dv are overwritten; <paramref name="scratch"/> holds
    /// one row of dS (tokens).
    /// </summary>
    public static void Backward(ReadOnlySpan<float> dContext, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
        int tokens, int heads, int headSize, ReadOnlySpan<bool> keyValid, ReadOnlySpan<float> probabilities,
        Span<float> dq, Span<float> dk, Span<float> dv, Span<float> scratch)
    {
        Check(q, k, v, tokens, heads, headSize, keyValid, probabilities, dContext.Length);
        int width = heads * headSize, size = tokens * width;
        if (dq.Length < size || dk.Length < size || dv.Length < size || scratch.Length < tokens)
        {
            throw new ArgumentException($"attention backward over {tokens} tokens needs dq, dk, dv of {size} and scratch of {tokens}.");
        }
        float scale = 1f / MathF.Sqrt(headSize);
        dq[..size].Clear();
        dk[..size].Clear();
        dv[..size].Clear();
        Span<float> dScores = scratch[..tokens];
        for (int h = 0; h < heads; h++)
        {
            for (int i = 0; i < tokens; i++)
            {
                ReadOnlySpan<float> p = probabilities.Slice((h * tokens + i) * tokens, tokens);
                ReadOnlySpan<float> dci = dContext.Slice(i * width + h * headSize, headSize);
                float weighted = 0;
                for (int j = 0; j < tokens; j++)
                {
                    if (!keyValid[j])
                    {
                        dScores[j] = 0;
                        continue;
                    }
                    Span<float> dvj = dv.Slice(j * width + h * headSize, headSize);
                    TensorPrimitives.MultiplyAdd(dci, p[j], dvj, dvj);
                    dScores[j] = TensorPrimitives.Dot(dci, v.Slice(j * width + h * headSize, headSize));
                    weighted += p[j] * dScores[j];
                }
                Span<float> dqi = dq.Slice(i * width + h * headSize, headSize);
                ReadOnlySpan<float> qi = q.Slice(i * width + h * headSize, headSize);
                for (int j = 0; j < tokens; j++)
                {
                    float ds = p[j] * (dScores[j] - weighted) * scale;
                    if (ds == 0) continue;
                    TensorPrimitives.MultiplyAdd(k.Slice(j * width + h * headSize, headSize), ds, dqi, dqi);
                    Span<float> dkj = dk.Slice(j * width + h * headSize, headSize);
                    TensorPrimitives.MultiplyAdd(qi, ds, dkj, dkj);
                }
            }
        }
    }

    private static void Check(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int tokens, int heads, int headSize,
        ReadOnlySpan<bool> keyValid, ReadOnlySpan<float> probabilities, int contextLength)
    {
        int size = tokens * heads * headSize;
        if (tokens <= 0 || heads <= 0 || headSize <= 0 || q.Length < size || k.Length < size || v.Length < size || contextLength < size
            || keyValid.Length < tokens || probabilities.Length < heads * tokens * tokens)
        {
            throw new ArgumentException($"attention over {tokens} tokens, {heads} heads of {headSize} needs q, k, v, context of {size}, {tokens} key flags and {heads * tokens * tokens} probabilities.");
        }
        bool any = false;
        for (int j = 0; j < tokens; j++) any |= keyValid[j];
        if (!any)
        {
            throw new ArgumentException("attention needs at least one valid key.");
        }
    }
}
