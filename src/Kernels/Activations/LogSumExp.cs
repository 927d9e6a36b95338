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

    /// <summary>
    /// Vectorised: exponentials and sum in float (every term is at most 1 and the largest is exactly 1, so the float
    /// sum's relative error stays near 1e-6 over 150k terms). <paramref name="scratch"/> needs values.Length floats
    /// and may be <paramref name="values"/> itself, which is then overwritten.
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
        return max + Math.Log(TensorPrimitives.Sum(shifted));
    }
}
