using System.Diagnostics;
using System.Numerics.Tensors;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using EdgeSlm.Kernels.Dispatch;

namespace EdgeSlm.Kernels.Float;

/// <summary>
/// The float epilogue of a quantized linear layer: y[t] += b + Σ_i x[t, c_i] · W[:, c_i] over the outlier columns
/// c_i, the few input columns that the int8 product leaves out because their values would take the whole scale of
/// their block (see docs/performance.md, activation outliers). y is tokens × rows, x tokens × columns, the outlier
/// weights one row of <c>rows</c> floats per outlier column.
/// </summary>
public static class BiasAndOutliers
{
    /// <summary>The outlier count the unrolled vector loop handles; other counts take one TensorPrimitives pass per outlier.</summary>
    public const int UnrolledOutliers = 4;

    public static void Add(ReadOnlySpan<float> x, int tokens, int columns, ReadOnlySpan<int> outlierColumns, ReadOnlySpan<float> bias,
        ReadOnlySpan<float> outlierWeights, Span<float> y, FloatPath? path = null)
    {
        int rows = bias.Length;
        if (x.Length < tokens * columns || y.Length < tokens * rows || outlierWeights.Length < outlierColumns.Length * rows)
        {
            throw new ArgumentException($"{tokens} tokens need {tokens * columns} inputs and {tokens * rows} outputs, and {outlierColumns.Length} outliers {outlierColumns.Length * rows} weights; got {x.Length}, {y.Length} and {outlierWeights.Length}");
        }
        foreach (int c in outlierColumns)
        {
            if ((uint)c >= (uint)columns) throw new ArgumentOutOfRangeException(nameof(outlierColumns), $"outlier column {c} is not below {columns}");
        }
        if ((path ?? FloatPaths.Default) is FloatPath.Reference || !Vector.IsHardwareAccelerated)
        {
            AddReference(x, tokens, columns, outlierColumns, bias, outlierWeights, y);
        }
        else
        {
            AddVector(x, tokens, columns, outlierColumns, bias, outlierWeights, y);
        }
    }

    /// <summary>Per element: (y + b), then one fused multiply-add per outlier, in column order (the vector tier's order).</summary>
    public static void AddReference(ReadOnlySpan<float> x, int tokens, int columns, ReadOnlySpan<int> outlierColumns, ReadOnlySpan<float> bias,
        ReadOnlySpan<float> outlierWeights, Span<float> y)
    {
        int rows = bias.Length;
        for (int t = 0; t < tokens; t++)
        {
            for (int r = 0; r < rows; r++)
            {
                float sum = y[t * rows + r] + bias[r];
                for (int i = 0; i < outlierColumns.Length; i++)
                {
                    sum = MathF.FusedMultiplyAdd(outlierWeights[i * rows + r], x[t * columns + outlierColumns[i]], sum);
                }
                y[t * rows + r] = sum;
            }
        }
    }

    /// <summary>
    /// One pass over each output row for <see cref="UnrolledOutliers"/> outliers: one TensorPrimitives call per
    /// outlier and token cost more than the arithmetic. Walking a slice of rows for all tokens instead took longer:
    /// the tokens' output rows then alias each other in the low 12 address bits (docs/performance.md).
    /// </summary>
    public static void AddVector(ReadOnlySpan<float> x, int tokens, int columns, ReadOnlySpan<int> outlierColumns, ReadOnlySpan<float> bias,
        ReadOnlySpan<float> outlierWeights, Span<float> y)
    {
        Debug.Assert(Vector.IsHardwareAccelerated);
        int rows = bias.Length;
        for (int t = 0; t < tokens; t++)
        {
            Span<float> row = y.Slice(t * rows, rows);
            if (outlierColumns.Length != UnrolledOutliers || rows % Vector<float>.Count != 0)
            {
                TensorPrimitives.Add(row, bias, row);
                for (int i = 0; i < outlierColumns.Length; i++)
                {
                    TensorPrimitives.MultiplyAdd(outlierWeights.Slice(i * rows, rows), x[t * columns + outlierColumns[i]], row, row);
                }
                continue;
            }
            var x0 = new Vector<float>(x[t * columns + outlierColumns[0]]);
            var x1 = new Vector<float>(x[t * columns + outlierColumns[1]]);
            var x2 = new Vector<float>(x[t * columns + outlierColumns[2]]);
            var x3 = new Vector<float>(x[t * columns + outlierColumns[3]]);
            Span<Vector<float>> output = MemoryMarshal.Cast<float, Vector<float>>(row);
            ReadOnlySpan<Vector<float>> b = MemoryMarshal.Cast<float, Vector<float>>(bias);
            ReadOnlySpan<Vector<float>> w = MemoryMarshal.Cast<float, Vector<float>>(outlierWeights);
            int stride = rows / Vector<float>.Count;
            for (int v = 0; v < output.Length; v++)
            {
                Vector<float> sum = output[v] + b[v];
                sum = Vector.FusedMultiplyAdd(w[v], x0, sum);
                sum = Vector.FusedMultiplyAdd(w[stride + v], x1, sum);
                sum = Vector.FusedMultiplyAdd(w[2 * stride + v], x2, sum);
                output[v] = Vector.FusedMultiplyAdd(w[3 * stride + v], x3, sum);
            }
        }
    }

    /// <summary>
    /// Asks for the bias and outlier weights (in no cache by then: the products before streamed megabytes of
    /// weights through) to be brought into L2 while the product runs, rather than waited for after it. x64 only:
    /// .NET has no prefetch instruction for ARM64.
    /// </summary>
    public static unsafe void Prefetch(ReadOnlySpan<float> bias, ReadOnlySpan<float> outlierWeights)
    {
        if (!Sse.IsSupported)
        {
            return;
        }
        fixed (float* b = bias, w = outlierWeights)
        {
            for (int i = 0; i < bias.Length; i += 16)
            {
                Sse.Prefetch1(b + i);
            }
            for (int i = 0; i < outlierWeights.Length; i += 16)
            {
                Sse.Prefetch1(w + i);
            }
        }
    }
}
