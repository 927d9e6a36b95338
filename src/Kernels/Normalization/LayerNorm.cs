using System.Numerics.Tensors;

namespace EdgeSlm.Kernels.Normalization;

/// <summary>
/// LayerNorm over one row, y = (x − mean)·rstd ⊙ w + b with rstd = 1/√(var + ε), in the form training needs: the
/// forward keeps the normalised row x̂ and rstd, the backward turns dy into dx and adds to dw and db. The inference
/// encoder keeps its own in-place LayerNorm (the same sequence of TensorPrimitives calls, so the two agree).
/// </summary>
public static class LayerNorm
{
    /// <summary>Normalises <paramref name="x"/>: writes x̂ into <paramref name="normalized"/> and y into <paramref name="y"/>; returns rstd.</summary>
    public static float Forward(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, float epsilon,
        Span<float> normalized, Span<float> y)
    {
        int n = x.Length;
        if (n == 0 || weight.Length != n || bias.Length != n || normalized.Length != n || y.Length != n)
        {
            throw new ArgumentException($"LayerNorm needs a non-empty row and weight, bias and outputs of its length (row {n}, weight {weight.Length}, bias {bias.Length}, outputs {normalized.Length}, {y.Length}).");
        }
        float mean = TensorPrimitives.Sum(x) / n;
        TensorPrimitives.Subtract(x, mean, normalized);
        float variance = TensorPrimitives.SumOfSquares(normalized) / n;
        float rstd = 1f / MathF.Sqrt(variance + epsilon);
        TensorPrimitives.Multiply(normalized, rstd, normalized);
        TensorPrimitives.FusedMultiplyAdd(normalized, weight, bias, y);
        return rstd;
    }

    /// <summary>
    /// dx = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂)) with g = dy ⊙ w; dw += dy ⊙ x̂; db += dy. <paramref name="dx"/> is
    /// overwritten (it may not alias <paramref name="dy"/>); <paramref name="scratch"/> holds g.
    /// </summary>
    public static void Backward(ReadOnlySpan<float> dy, ReadOnlySpan<float> normalized, float rstd, ReadOnlySpan<float> weight,
        Span<float> dx, Span<float> dWeight, Span<float> dBias, Span<float> scratch)
    {
        int n = dy.Length;
        if (n == 0 || normalized.Length != n || weight.Length != n || dx.Length != n || dWeight.Length != n || dBias.Length != n || scratch.Length < n)
        {
            throw new ArgumentException($"LayerNorm backward needs spans of the row's length {n} (x̂ {normalized.Length}, weight {weight.Length}, dx {dx.Length}, dw {dWeight.Length}, db {dBias.Length}, scratch {scratch.Length}).");
        }
        Span<float> g = scratch[..n];
        TensorPrimitives.FusedMultiplyAdd(dy, normalized, dWeight, dWeight);
        TensorPrimitives.Add(dBias, dy, dBias);
        TensorPrimitives.Multiply(dy, weight, g);
        float meanG = TensorPrimitives.Sum(g) / n;
        float meanGx = TensorPrimitives.Dot(g, normalized) / n;
        // dx = (g − meanG − x̂·meanGx) · rstd
        TensorPrimitives.MultiplyAdd(normalized, -meanGx, g, dx);
        TensorPrimitives.Add(dx, -meanG, dx);
        TensorPrimitives.Multiply(dx, rstd, dx);
    }
}
