using System.Numerics.Tensors;
using EdgeSlm.Kernels.Dispatch;


namespace EdgeSlm.Kernels.Normalization;

/// <summary>
/// RMSNorm: y = x / sqrt(mean(x²) + ε) ⊙ w, as ggml's <c>rms_norm</c> followed by the multiplication by the norm
/// weight. The reference sums the squares in double as ggml does; the vector tier in float (TensorPrimitives).
/// </summary>
public static class RmsNorm
{
    /// <summary>Normalises one row <paramref name="x"/> into <paramref name="y"/> (may be the same span), on the tier of <paramref name="path"/>.</summary>
    public static void Compute(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float epsilon, Span<float> y, FloatPath? path = null)
    {
        if ((path ?? FloatPaths.Default) is FloatPath.Reference)
        {
            ComputeReference(x, weight, epsilon, y);
            return;
        }
        ComputeVector(x, weight, epsilon, y);
    }

    public static void ComputeReference(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float epsilon, Span<float> y)
    {
        Validate(x, weight, y);
        double sum = 0;
        for (int i = 0; i < x.Length; i++)
        {
            sum += (double)(x[i] * x[i]);
        }
        float mean = (float)(sum / x.Length);
        float scale = 1f / MathF.Sqrt(mean + epsilon);
        for (int i = 0; i < x.Length; i++)
        {
            y[i] = x[i] * scale * weight[i];
        }
    }

    public static void ComputeVector(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float epsilon, Span<float> y)
    {
        Validate(x, weight, y);
        float mean = TensorPrimitives.SumOfSquares(x) / x.Length;
        float scale = 1f / MathF.Sqrt(mean + epsilon);
        TensorPrimitives.Multiply(x, scale, y);
        TensorPrimitives.Multiply(y, weight, y);
    }

    private static void Validate(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y)
    {
        if (x.Length == 0 || weight.Length != x.Length || y.Length != x.Length)
        {
            throw new ArgumentException($"RMSNorm needs a non-empty row and a weight and output of its length (row {x.Length}, weight {weight.Length}, output {y.Length}).");
        }
    }
}
