using System.Numerics.Tensors;

namespace EdgeSlm.Kernels.Activations;

/// <summary>
/// log Σ exp(xᵢ), the normaliser of a log-softmax: log p(i) = xᵢ − LogSumExp(x). The language model takes it over a
/// whole vocabulary (49k to 152k logits) for every scored token, the lexical classifier over its classes.
/// </summary>
public static class LogSumExp
{
    /// <summary>The definition: shifted by the maximum so that no exponential overflows, summed in double.</summary>
    public static double ComputeReference(ReadOnlySpan<float> values)
    {
        float max = float.NegativeInfinity;
        foreach (float value in values)
        {
            max = Math.Max(max, value);
        }
        double sum = 0;
        foreach (float value in values)
        {
            sum += Math.Exp((double)value - max);
        }
        return max + Math.Log(sum);
    }

    // Float sums of this many exponentials at a time, added up in double. One float sum over a whole vocabulary was
    // off by 5e-5 in the log on 4-lane NEON (152k terms, 38k per lane), 2.5 times the tests' bound.
    private const int Chunk = 1024;

    /// <summary>
    /// Vectorised: exponentials in float, summed in float over chunks of <see cref="Chunk"/> and the chunks in double.
    /// <paramref name="scratch"/> needs values.Length floats and may be <paramref name="values"/> itself, which is
    /// then overwritten.
    /// </summary>
    public static double Compute(ReadOnlySpan<float> values, Span<float> scratch)
    {
        if (values.IsEmpty)
        {
            return double.NegativeInfinity;
        }
        float max = TensorPrimitives.Max(values);
        Span<float> shifted = scratch[..values.Length];
        TensorPrimitives.Subtract(values, max, shifted);
        TensorPrimitives.Exp(shifted, shifted);
        double sum = 0;
        for (int start = 0; start < shifted.Length; start += Chunk)
        {
            sum += TensorPrimitives.Sum(shifted.Slice(start, Math.Min(Chunk, shifted.Length - start)));
        }
        return max + Math.Log(sum);
    }
}
