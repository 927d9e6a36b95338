using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EdgeSlm.Kernels.Dispatch;

namespace EdgeSlm.Kernels.Float;

/// <summary>
/// The two matrix products of a training step of a softmax classifier, for a range of classes and a batch
/// of examples (rows of the feature matrix, in any order):
/// <list type="bullet">
/// <item><see cref="Logits"/>: scores[i, c] = x_i · w_c + b_c</item>
/// <item><see cref="Gradients"/>: gradient_c = l2 · w_c + Σ_i g[i, c] · x_i</item>
/// </list>
/// A dot product per (example, class) through TensorPrimitives loads two vectors per multiply-add; tiles of four
/// classes share each loaded feature vector (and, for the logits, two examples each weight vector), so the loop
/// is bound by multiply-adds rather than loads (docs/kernels.md, "Measurements behind the code"). These are not plain element-wise operations, so they are
/// written here on <see cref="Vector{T}"/> (256 bits on x64, 128 on ARM64) beside a scalar reference. Each
/// result element is accumulated in the same order whatever tile computes it, so a class's results do not
/// depend on which classes share its tile, nor on how the classes are split between threads.
/// </summary>
public static class BatchProducts
{
    /// <summary>scores[i·classes + c] = features[rows[i]] · weights[c] + bias[c] for c in [firstClass, endClass).</summary>
    public static void Logits(ReadOnlySpan<float> features, ReadOnlySpan<int> rows, ReadOnlySpan<float> weights, ReadOnlySpan<float> bias,
        int dimension, int firstClass, int endClass, Span<float> scores)
    {
        Check(features, rows, weights, bias.Length, dimension, firstClass, endClass, scores.Length);
        if (FloatPaths.Default is not FloatPath.Reference)
        {
            LogitsVector(features, rows, weights, bias, dimension, firstClass, endClass, scores);
        }
        else
        {
            LogitsReference(features, rows, weights, bias, dimension, firstClass, endClass, scores);
        }
    }

    /// <summary>
    /// gradients[c] = l2 · weights[c] + Σ_i g[i·classes + c] · features[rows[i]] for c in [firstClass, endClass);
    /// <paramref name="gradients"/> holds (endClass − firstClass) rows of the dimension.
    /// </summary>
    public static void Gradients(ReadOnlySpan<float> features, ReadOnlySpan<int> rows, ReadOnlySpan<float> g, ReadOnlySpan<float> weights, float l2,
        int classes, int dimension, int firstClass, int endClass, Span<float> gradients)
    {
        Check(features, rows, weights, classes, dimension, firstClass, endClass, g.Length);
        if (gradients.Length < (endClass - firstClass) * dimension)
        {
            throw new ArgumentException($"{endClass - firstClass} gradients of dimension {dimension} need {(endClass - firstClass) * dimension} floats, not {gradients.Length}");
        }
        if (FloatPaths.Default is not FloatPath.Reference)
        {
            GradientsVector(features, rows, g, weights, l2, classes, dimension, firstClass, endClass, gradients);
        }
        else
        {
            GradientsReference(features, rows, g, weights, l2, classes, dimension, firstClass, endClass, gradients);
        }
    }

    private static void Check(ReadOnlySpan<float> features, ReadOnlySpan<int> rows, ReadOnlySpan<float> weights, int classes, int dimension,
        int firstClass, int endClass, int scoreLength)
    {
        if (dimension <= 0 || features.Length % dimension != 0 || weights.Length != classes * dimension)
        {
            throw new ArgumentException($"features ({features.Length}) and weights ({weights.Length}) must be whole rows of dimension {dimension}, {classes} rows of weights");
        }
        if (firstClass < 0 || endClass > classes || firstClass > endClass || scoreLength < rows.Length * classes)
        {
            throw new ArgumentException($"classes [{firstClass}, {endClass}) of {classes} and {rows.Length} rows need {rows.Length * classes} scores (got {scoreLength})");
        }
        int examples = features.Length / dimension;
        foreach (int row in rows)
        {
            if ((uint)row >= (uint)examples)
            {
                throw new ArgumentOutOfRangeException(nameof(rows), $"row {row} is not one of the {examples} examples");
            }
        }
    }

    // The references: one element at a time, fused multiply-adds in order. The vector gradients equal them bit for
    // bit (their lanes are separate elements); the vector logits sum each Vector<float>.Count-th element in a lane,
    // reduce the lanes with Vector.Sum, then add the leftover elements: equal within rounding.

    public static void LogitsReference(ReadOnlySpan<float> features, ReadOnlySpan<int> rows, ReadOnlySpan<float> weights, ReadOnlySpan<float> bias,
        int dimension, int firstClass, int endClass, Span<float> scores)
    {
        int classes = bias.Length;
        for (int i = 0; i < rows.Length; i++)
        {
            ReadOnlySpan<float> x = features.Slice(rows[i] * dimension, dimension);
            for (int c = firstClass; c < endClass; c++)
            {
                ReadOnlySpan<float> w = weights.Slice(c * dimension, dimension);
                float sum = 0;
                for (int j = 0; j < dimension; j++)
                {
                    sum = MathF.FusedMultiplyAdd(x[j], w[j], sum);
                }
                scores[i * classes + c] = sum + bias[c];
            }
        }
    }

    public static void GradientsReference(ReadOnlySpan<float> features, ReadOnlySpan<int> rows, ReadOnlySpan<float> g, ReadOnlySpan<float> weights, float l2,
        int classes, int dimension, int firstClass, int endClass, Span<float> gradients)
    {
        for (int c = firstClass; c < endClass; c++)
        {
            Span<float> gradient = gradients.Slice((c - firstClass) * dimension, dimension);
            for (int j = 0; j < dimension; j++)
            {
                float sum = l2 * weights[c * dimension + j];
                for (int i = 0; i < rows.Length; i++)
                {
                    sum = MathF.FusedMultiplyAdd(g[i * classes + c], features[rows[i] * dimension + j], sum);
                }
                gradient[j] = sum;
            }
        }
    }

    public static void LogitsVector(ReadOnlySpan<float> features, ReadOnlySpan<int> rows, ReadOnlySpan<float> weights, ReadOnlySpan<float> bias,
        int dimension, int firstClass, int endClass, Span<float> scores)
    {
        int classes = bias.Length;
        ref float x = ref MemoryMarshal.GetReference(features);
        ref float w = ref MemoryMarshal.GetReference(weights);
        int i = 0;
        for (; i + 2 <= rows.Length; i += 2)
        {
            nuint x0 = (nuint)(rows[i] * dimension), x1 = (nuint)(rows[i + 1] * dimension);
            int c = firstClass;
            for (; c + 4 <= endClass; c += 4)
            {
                Tile4x2(ref x, x0, x1, ref w, (nuint)(c * dimension), dimension, scores.Slice(i * classes + c, 4), scores.Slice((i + 1) * classes + c, 4));
                for (int t = 0; t < 4; t++)
                {
                    scores[i * classes + c + t] += bias[c + t];
                    scores[(i + 1) * classes + c + t] += bias[c + t];
                }
            }
            for (; c < endClass; c++)
            {
                scores[i * classes + c] = Dot(ref x, x0, ref w, (nuint)(c * dimension), dimension) + bias[c];
                scores[(i + 1) * classes + c] = Dot(ref x, x1, ref w, (nuint)(c * dimension), dimension) + bias[c];
            }
        }
        for (; i < rows.Length; i++)
        {
            for (int c = firstClass; c < endClass; c++)
            {
                scores[i * classes + c] = Dot(ref x, (nuint)(rows[i] * dimension), ref w, (nuint)(c * dimension), dimension) + bias[c];
            }
        }
    }

    /// <summary>Two examples against four consecutive weight rows: each loaded weight vector serves two examples, each feature vector four classes.</summary>
    private static void Tile4x2(ref float x, nuint x0, nuint x1, ref float w, nuint w0, int dimension, Span<float> out0, Span<float> out1)
    {
        nuint d = (nuint)dimension, lanes = (nuint)Vector<float>.Count;
        Vector<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
        nuint j = 0;
        for (; j + lanes <= d; j += lanes)
        {
            Vector<float> v0 = Vector.LoadUnsafe(ref w, w0 + j), v1 = Vector.LoadUnsafe(ref w, w0 + d + j);
            Vector<float> v2 = Vector.LoadUnsafe(ref w, w0 + 2 * d + j), v3 = Vector.LoadUnsafe(ref w, w0 + 3 * d + j);
            Vector<float> e = Vector.LoadUnsafe(ref x, x0 + j);
            a00 = Vector.FusedMultiplyAdd(e, v0, a00);
            a01 = Vector.FusedMultiplyAdd(e, v1, a01);
            a02 = Vector.FusedMultiplyAdd(e, v2, a02);
            a03 = Vector.FusedMultiplyAdd(e, v3, a03);
            e = Vector.LoadUnsafe(ref x, x1 + j);
            a10 = Vector.FusedMultiplyAdd(e, v0, a10);
            a11 = Vector.FusedMultiplyAdd(e, v1, a11);
            a12 = Vector.FusedMultiplyAdd(e, v2, a12);
            a13 = Vector.FusedMultiplyAdd(e, v3, a13);
        }
        float s00 = Vector.Sum(a00), s01 = Vector.Sum(a01), s02 = Vector.Sum(a02), s03 = Vector.Sum(a03);
        float s10 = Vector.Sum(a10), s11 = Vector.Sum(a11), s12 = Vector.Sum(a12), s13 = Vector.Sum(a13);
        for (; j < d; j++)
        {
            float e0 = Unsafe.Add(ref x, x0 + j), e1 = Unsafe.Add(ref x, x1 + j);
            float v0 = Unsafe.Add(ref w, w0 + j), v1 = Unsafe.Add(ref w, w0 + d + j), v2 = Unsafe.Add(ref w, w0 + 2 * d + j), v3 = Unsafe.Add(ref w, w0 + 3 * d + j);
            s00 = MathF.FusedMultiplyAdd(e0, v0, s00);
            s01 = MathF.FusedMultiplyAdd(e0, v1, s01);
            s02 = MathF.FusedMultiplyAdd(e0, v2, s02);
            s03 = MathF.FusedMultiplyAdd(e0, v3, s03);
            s10 = MathF.FusedMultiplyAdd(e1, v0, s10);
            s11 = MathF.FusedMultiplyAdd(e1, v1, s11);
            s12 = MathF.FusedMultiplyAdd(e1, v2, s12);
            s13 = MathF.FusedMultiplyAdd(e1, v3, s13);
        }
        (out0[0], out0[1], out0[2], out0[3]) = (s00, s01, s02, s03);
        (out1[0], out1[1], out1[2], out1[3]) = (s10, s11, s12, s13);
    }

    private static float Dot(ref float x, nuint x0, ref float w, nuint w0, int dimension)
    {
        nuint d = (nuint)dimension, lanes = (nuint)Vector<float>.Count;
        Vector<float> a = default;
        nuint j = 0;
        for (; j + lanes <= d; j += lanes)
        {
            a = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref x, x0 + j), Vector.LoadUnsafe(ref w, w0 + j), a);
        }
        float s = Vector.Sum(a);
        for (; j < d; j++)
        {
            s = MathF.FusedMultiplyAdd(Unsafe.Add(ref x, x0 + j), Unsafe.Add(ref w, w0 + j), s);
        }
        return s;
    }

    public static void GradientsVector(ReadOnlySpan<float> features, ReadOnlySpan<int> rows, ReadOnlySpan<float> g, ReadOnlySpan<float> weights, float l2,
        int classes, int dimension, int firstClass, int endClass, Span<float> gradients)
    {
        ref float x = ref MemoryMarshal.GetReference(features);
        ref float w = ref MemoryMarshal.GetReference(weights);
        ref float o = ref MemoryMarshal.GetReference(gradients);
        Span<nuint> offsets = rows.Length <= 256 ? stackalloc nuint[rows.Length] : new nuint[rows.Length];
        for (int i = 0; i < rows.Length; i++)
        {
            offsets[i] = (nuint)(rows[i] * dimension);
        }
        nuint d = (nuint)dimension, lanes = (nuint)Vector<float>.Count;
        var decay = new Vector<float>(l2);
        int c = firstClass;
        for (; c + 4 <= endClass; c += 4)
        {
            // Four classes at a time: each loaded feature vector serves all four.
            nuint w0 = (nuint)(c * dimension), o0 = (nuint)((c - firstClass) * dimension);
            nuint j = 0;
            for (; j + lanes <= d; j += lanes)
            {
                Vector<float> a0 = decay * Vector.LoadUnsafe(ref w, w0 + j), a1 = decay * Vector.LoadUnsafe(ref w, w0 + d + j);
                Vector<float> a2 = decay * Vector.LoadUnsafe(ref w, w0 + 2 * d + j), a3 = decay * Vector.LoadUnsafe(ref w, w0 + 3 * d + j);
                for (int i = 0; i < offsets.Length; i++)
                {
                    Vector<float> e = Vector.LoadUnsafe(ref x, offsets[i] + j);
                    int gi = i * classes + c;
                    a0 = Vector.FusedMultiplyAdd(new Vector<float>(g[gi]), e, a0);
                    a1 = Vector.FusedMultiplyAdd(new Vector<float>(g[gi + 1]), e, a1);
                    a2 = Vector.FusedMultiplyAdd(new Vector<float>(g[gi + 2]), e, a2);
                    a3 = Vector.FusedMultiplyAdd(new Vector<float>(g[gi + 3]), e, a3);
                }
                a0.StoreUnsafe(ref o, o0 + j);
                a1.StoreUnsafe(ref o, o0 + d + j);
                a2.StoreUnsafe(ref o, o0 + 2 * d + j);
                a3.StoreUnsafe(ref o, o0 + 3 * d + j);
            }
            for (int t = 0; t < 4; t++)
            {
                GradientTail(ref x, offsets, g, ref w, l2, classes, c + t, d, j, ref o, o0 + (nuint)t * d);
            }
        }
        for (; c < endClass; c++)
        {
            nuint w0 = (nuint)(c * dimension), o0 = (nuint)((c - firstClass) * dimension);
            nuint j = 0;
            for (; j + lanes <= d; j += lanes)
            {
                Vector<float> a = decay * Vector.LoadUnsafe(ref w, w0 + j);
                for (int i = 0; i < offsets.Length; i++)
                {
                    a = Vector.FusedMultiplyAdd(new Vector<float>(g[i * classes + c]), Vector.LoadUnsafe(ref x, offsets[i] + j), a);
                }
                a.StoreUnsafe(ref o, o0 + j);
            }
            GradientTail(ref x, offsets, g, ref w, l2, classes, c, d, j, ref o, o0);
        }
    }

    /// <summary>The elements of one class's gradient from <paramref name="start"/> on, one at a time.</summary>
    private static void GradientTail(ref float x, ReadOnlySpan<nuint> offsets, ReadOnlySpan<float> g, ref float w, float l2, int classes, int c,
        nuint d, nuint start, ref float o, nuint o0)
    {
        for (nuint j = start; j < d; j++)
        {
            float sum = l2 * Unsafe.Add(ref w, (nuint)c * d + j);
            for (int i = 0; i < offsets.Length; i++)
            {
                sum = MathF.FusedMultiplyAdd(g[i * classes + c], Unsafe.Add(ref x, offsets[i] + j), sum);
            }
            Unsafe.Add(ref o, o0 + j) = sum;
        }
    }
}
