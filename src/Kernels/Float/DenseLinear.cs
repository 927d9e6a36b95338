using System.Diagnostics;
using System.Numerics.Tensors;

namespace EdgeSlm.Kernels.Float;

/// <summary>
/// A float linear layer y = x·Wᵀ + b and its backward pass, for training: W is (rows = outputs, columns = inputs), x is
/// (tokens, columns), y is (tokens, rows), all row-major. The vector tier walks W row by row and lets that row (at most
/// 6 KB) serve every token while it is in L1; the references are plain loops in the same layout, for the tests.
/// </summary>
public static class DenseLinear
{
    /// <summary>y[t, r] = Σ_c x[t, c]·W[r, c] + b[r].</summary>
    public static void Forward(ReadOnlySpan<float> x, int tokens, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, Span<float> y)
    {
        int rows = bias.Length, columns = Check(x, tokens, weight, rows, y.Length);
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<float> w = weight.Slice(r * columns, columns);
            for (int t = 0; t < tokens; t++)
            {
                y[t * rows + r] = TensorPrimitives.Dot(w, x.Slice(t * columns, columns)) + bias[r];
            }
        }
    }

    public static void ForwardReference(ReadOnlySpan<float> x, int tokens, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, Span<float> y)
    {
        int rows = bias.Length, columns = Check(x, tokens, weight, rows, y.Length);
        for (int t = 0; t < tokens; t++)
        {
            for (int r = 0; r < rows; r++)
            {
                float sum = 0;
                for (int c = 0; c < columns; c++) sum += x[t * columns + c] * weight[r * columns + c];
                y[t * rows + r] = sum + bias[r];
            }
        }
    }

    /// <summary>
    /// From dy (tokens, rows): dx = dy·W (overwritten; skipped when <paramref name="dx"/> is empty, for a first layer),
    /// dW += dyᵀ·x and db += Σ_t dy[t].
    /// </summary>
    public static void Backward(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, int tokens, ReadOnlySpan<float> weight,
        Span<float> dx, Span<float> dWeight, Span<float> dBias)
    {
        int rows = dBias.Length, columns = Check(x, tokens, weight, rows, dy.Length);
        CheckGradients(dx, dWeight, tokens, rows, columns);
        bool input = !dx.IsEmpty;
        if (input)
        {
            dx[..(tokens * columns)].Clear();
        }
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<float> w = weight.Slice(r * columns, columns);
            Span<float> dw = dWeight.Slice(r * columns, columns);
            float db = 0;
            for (int t = 0; t < tokens; t++)
            {
                float g = dy[t * rows + r];
                if (g == 0) continue;
                db += g;
                TensorPrimitives.MultiplyAdd(x.Slice(t * columns, columns), g, dw, dw);
                if (input)
                {
                    Span<float> dxRow = dx.Slice(t * columns, columns);
                    TensorPrimitives.MultiplyAdd(w, g, dxRow, dxRow);
                }
            }
            dBias[r] += db;
        }
    }

    public static void BackwardReference(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, int tokens, ReadOnlySpan<float> weight,
        Span<float> dx, Span<float> dWeight, Span<float> dBias)
    {
        int rows = dBias.Length, columns = Check(x, tokens, weight, rows, dy.Length);
        CheckGradients(dx, dWeight, tokens, rows, columns);
        for (int t = 0; t < tokens; t++)
        {
            for (int c = 0; c < columns && !dx.IsEmpty; c++)
            {
                float sum = 0;
                for (int r = 0; r < rows; r++) sum += dy[t * rows + r] * weight[r * columns + c];
                dx[t * columns + c] = sum;
            }
            for (int r = 0; r < rows; r++)
            {
                float g = dy[t * rows + r];
                dBias[r] += g;
                for (int c = 0; c < columns; c++) dWeight[r * columns + c] += g * x[t * columns + c];
            }
        }
    }

    private static int Check(ReadOnlySpan<float> x, int tokens, ReadOnlySpan<float> weight, int rows, int outputLength)
    {
        if (tokens < 0 || rows <= 0 || weight.Length % rows != 0)
        {
            throw new ArgumentException($"a linear layer needs a (rows × columns) weight and one bias per row (weight {weight.Length}, rows {rows}, tokens {tokens}).");
        }
        int columns = weight.Length / rows;
        if (x.Length < tokens * columns || outputLength < tokens * rows)
        {
            throw new ArgumentException($"linear layer {rows}×{columns}: {tokens} tokens need x of {tokens * columns} and y of {tokens * rows} (have {x.Length}, {outputLength}).");
        }
        return columns;
    }

    private static void CheckGradients(Span<float> dx, Span<float> dWeight, int tokens, int rows, int columns)
    {
        if (dWeight.Length != rows * columns || (!dx.IsEmpty && dx.Length < tokens * columns))
        {
            throw new ArgumentException($"linear layer {rows}×{columns}: dW needs {rows * columns} (has {dWeight.Length}), dx {tokens * columns} or none (has {dx.Length}).");
        }
        Debug.Assert(columns > 0);
    }
}
